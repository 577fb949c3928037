//! `cvm-mock-kbs` — TEST FIXTURE, not a key broker for real secrets.
//!
//! Usage: `cvm-mock-kbs --reference PCRS.json --ak-public HEX (--key-hex HEX | --key-file FILE)
//!   (--listen 127.0.0.1:PORT | --connect-unix PATH)`
//! `--ak-public` is the enrolled AK (hex `TPMT_PUBLIC`, as the agent sends it): quotes signed
//! by any other key are refused.
//! `--connect-unix` attaches to QEMU's virtio-serial chardev socket
//! (`-chardev socket,id=agent,path=PATH,server=on,wait=off -device virtserialport,chardev=agent,
//! name=org.cvm.agent.0`) and serves one session; `--listen` serves one session per connection.
//! Exit status: 0 if the key was released and the agent reported `done{ok:true}`, else 1.

use anyhow::{bail, Context, Result};
use cvm_broker::policy::parse_reference;
use cvm_broker::session::{serve, Broker};
use std::io::BufReader;
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let (mut reference, mut ak, mut key, mut listen, mut connect) = (None, None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--reference" => reference = Some(val()?),
            "--ak-public" => ak = Some(val()?),
            "--key-hex" => key = Some(val()?),
            "--key-file" => key = Some(std::fs::read_to_string(val()?)?.trim().to_string()),
            "--listen" => listen = Some(val()?),
            "--connect-unix" => connect = Some(val()?),
            other => bail!("unknown argument {other:?}"),
        }
    }
    let reference_path = reference.context("--reference is required")?;
    let reference = parse_reference(
        &std::fs::read_to_string(&reference_path)
            .with_context(|| format!("reading {reference_path}"))?,
    )
    .with_context(|| format!("parsing {reference_path}"))?;
    let key: [u8; 32] = hex::decode(key.context("--key-hex or --key-file is required")?)?
        .try_into()
        .map_err(|_| anyhow::format_err!("key must be 32 bytes"))?;
    let enrolled_ak = ak.context("--ak-public is required (the enrolled AK)")?;
    hex::decode(&enrolled_ak).context("--ak-public is not hex")?;
    let broker = Broker {
        reference,
        enrolled_ak,
        key,
        pull: None,
    };
    eprintln!(
        "cvm-mock-kbs (TEST FIXTURE): {} reference PCRs",
        broker.reference.len()
    );

    let ok = |o: &cvm_broker::session::Outcome| o.released && o.agent_done == Some(true);
    match (listen, connect) {
        (Some(addr), None) => {
            let l =
                std::net::TcpListener::bind(&addr).with_context(|| format!("binding {addr}"))?;
            eprintln!("cvm-mock-kbs: listening on {addr}");
            for s in l.incoming() {
                let s = s?;
                let o = serve(&broker, &mut BufReader::new(s.try_clone()?), &mut &s)?;
                eprintln!("cvm-mock-kbs: session ended, success={}", ok(&o));
            }
            Ok(())
        }
        (None, Some(path)) => {
            let deadline = Instant::now() + Duration::from_secs(60);
            let s = loop {
                match std::os::unix::net::UnixStream::connect(&path) {
                    Ok(s) => break s,
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("cvm-mock-kbs: waiting for {path}: {e}");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Err(e) => bail!("connecting to {path}: {e}"),
                }
            };
            let o = serve(&broker, &mut BufReader::new(s.try_clone()?), &mut &s)?;
            if !ok(&o) {
                bail!(
                    "session failed: refusal {:?}, agent errors {:?}",
                    o.refusal,
                    o.agent_errors
                );
            }
            Ok(())
        }
        _ => bail!("give exactly one of --listen or --connect-unix"),
    }
}
