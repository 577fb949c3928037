//! `cvm-agent`: the guest service. Opens the host channel, runs one session (see
//! `cvm_agent::session`), exits 0 only if the session ended with `done{ok:true}`.
//!
//! Usage: `cvm-agent [--channel PATH|tcp:HOST:PORT|unix:PATH] [--tpm PATH|unix:PATH|tcp:HOST:PORT|none]
//!   [--pcrs-from-tpm] [--root DIR] [--data-disk DEV] [--mount DIR] [--image REF --registry URL
//!   [--cosign-key PEMFILE]]`
//! Defaults: `--channel /dev/virtio-ports/org.cvm.agent.0 --tpm /dev/tpmrm0 --root /`.

use anyhow::{bail, Context, Result};
use cvm_agent::evidence::Sources;
use cvm_agent::session::{self, Agent};
use cvm_agent::tpm::transport::{DeviceTransport, StreamTransport, Transport};
use cvm_agent::tpm::Tpm;
use cvm_agent::{luks, oci, protocol};
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;

struct BoxedTransport(Box<dyn Transport>);

impl Transport for BoxedTransport {
    fn transact(&mut self, command: &[u8]) -> std::io::Result<Vec<u8>> {
        self.0.transact(command)
    }
}

fn open_tpm(spec: &str) -> Result<Option<Tpm<BoxedTransport>>> {
    let t: Box<dyn Transport> = if spec == "none" {
        return Ok(None);
    } else if let Some(p) = spec.strip_prefix("unix:") {
        Box::new(StreamTransport::new(
            std::os::unix::net::UnixStream::connect(p)
                .with_context(|| format!("connecting to swtpm {p}"))?,
        ))
    } else if let Some(a) = spec.strip_prefix("tcp:") {
        Box::new(StreamTransport::new(
            std::net::TcpStream::connect(a).with_context(|| format!("connecting to swtpm {a}"))?,
        ))
    } else {
        Box::new(
            DeviceTransport::open(spec.as_ref()).with_context(|| format!("opening TPM {spec}"))?,
        )
    };
    Ok(Some(Tpm::new(BoxedTransport(t))))
}

fn open_channel(spec: &str) -> Result<(Box<dyn Read>, Box<dyn Write>)> {
    if let Some(a) = spec.strip_prefix("tcp:") {
        let s = std::net::TcpStream::connect(a).with_context(|| format!("connecting to {a}"))?;
        Ok((Box::new(s.try_clone()?), Box::new(s)))
    } else if let Some(p) = spec.strip_prefix("unix:") {
        let s = std::os::unix::net::UnixStream::connect(p)
            .with_context(|| format!("connecting to {p}"))?;
        Ok((Box::new(s.try_clone()?), Box::new(s)))
    } else {
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .open(spec)
            .with_context(|| format!("opening host channel {spec}"))?;
        Ok((Box::new(f.try_clone()?), Box::new(f)))
    }
}

fn main() -> Result<()> {
    let mut channel = format!("/dev/virtio-ports/{}", protocol::VIRTIO_PORT_NAME);
    let mut tpm_spec = "/dev/tpmrm0".to_string();
    let mut sources = Sources {
        root: "/".into(),
        pcrs_from_tpm: false,
        veritysetup: None,
    };
    let mut data_disk = None;
    let mut mount = PathBuf::from("/run/cvm-data");
    let (mut image, mut registry, mut cosign_key) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--channel" => channel = val()?,
            "--tpm" => tpm_spec = val()?,
            "--pcrs-from-tpm" => sources.pcrs_from_tpm = true,
            "--root" => sources.root = val()?.into(),
            "--data-disk" => data_disk = Some(PathBuf::from(val()?)),
            "--mount" => mount = val()?.into(),
            "--image" => image = Some(val()?),
            "--registry" => registry = Some(val()?),
            "--cosign-key" => cosign_key = Some(val()?),
            "--help" | "-h" => {
                println!(
                    "{}",
                    include_str!("main.rs")
                        .lines()
                        .take(8)
                        .map(|l| l.trim_start_matches("//!"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    for vs in [
        "/usr/sbin/veritysetup",
        "/sbin/veritysetup",
        "/usr/bin/veritysetup",
    ] {
        if sources.root.join(vs.trim_start_matches('/')).exists() {
            sources.veritysetup = Some(vs.into());
            break;
        }
    }
    let pull = match (image, registry) {
        (Some(i), Some(r)) => Some(oci::PullRequest {
            image: oci::ImageRef::parse(&i)?,
            registry_url: r,
            dest: mount.join("images"),
            cosign_public_key_pem: cosign_key
                .map(|p| {
                    std::fs::read_to_string(&p).with_context(|| format!("reading cosign key {p}"))
                })
                .transpose()?,
        }),
        (None, None) => None,
        _ => bail!("--image and --registry go together"),
    };
    eprintln!(
        "cvm-agent: channel {channel}, TPM {tpm_spec}, root {}",
        sources.root.display()
    );
    let (r, mut w) = open_channel(&channel)?;
    let tpm = match open_tpm(&tpm_spec) {
        Ok(t) => t,
        Err(e) => {
            // Reported to the host by the session as "no TPM configured" plus this line.
            let line = protocol::encode(&protocol::Message::Error {
                message: format!("{e:#}"),
                fatal: false,
            })?;
            w.write_all(&line)?;
            None
        }
    };
    let data_disk = data_disk.map(|device| luks::Config {
        device,
        mapper_name: "cvm-data".into(),
        mount_point: mount.clone(),
        marker: "cvm-agent-marker".into(),
    });
    let mut agent = Agent {
        sources,
        tpm,
        data_disk,
        pull,
    };
    let outcome =
        session::run(&mut BufReader::new(r), &mut w, &mut agent).context("host channel")?;
    if !outcome.ok {
        bail!("session failed (reported to the host)");
    }
    Ok(())
}
