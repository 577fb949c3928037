//! One agent session over the host channel: hello → evidence → key/refused → data disk →
//! image pull → done. Every step is sent to the host as a `step` message and echoed on stderr;
//! every failure is sent as an `error` before the session ends.

use crate::evidence::{self, Sources};
use crate::luks;
use crate::oci;
use crate::protocol::{self, Message};
use crate::tpm::transport::Transport;
use crate::tpm::Tpm;
use std::io::{BufRead, Write};

/// What the agent does after the key is released.
pub struct Agent<T> {
    pub sources: Sources,
    pub tpm: Option<Tpm<T>>,
    pub data_disk: Option<luks::Config>,
    pub pull: Option<oci::PullRequest>,
}

/// How a session ended (the host saw the same through `done`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub key_released: bool,
}

/// Sends messages, echoing them on stderr; remembers the first write failure.
struct Out<'a, W: Write> {
    w: &'a mut W,
    broken: Option<std::io::Error>,
}

impl<W: Write> Out<'_, W> {
    fn send(&mut self, msg: &Message) {
        match msg {
            Message::Step { message } => eprintln!("cvm-agent: {message}"),
            Message::Error { message, fatal } => {
                eprintln!("cvm-agent: error (fatal={fatal}): {message}")
            }
            Message::Evidence { .. } => eprintln!("cvm-agent: sending evidence"),
            other => eprintln!("cvm-agent: sending {other:?}"),
        }
        if self.broken.is_some() {
            return;
        }
        let res = protocol::encode(msg)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
            .and_then(|line| self.w.write_all(&line))
            .and_then(|()| self.w.flush());
        if let Err(e) = res {
            eprintln!("cvm-agent: host channel write failed: {e}");
            self.broken = Some(e);
        }
    }
    fn step(&mut self, message: impl Into<String>) {
        self.send(&Message::Step {
            message: message.into(),
        });
    }
    fn fail(&mut self, message: impl Into<String>) -> Outcome {
        self.send(&Message::Error {
            message: message.into(),
            fatal: true,
        });
        self.send(&Message::Done { ok: false });
        Outcome {
            ok: false,
            key_released: false,
        }
    }
}

fn next(reader: &mut impl BufRead) -> Result<Message, String> {
    match protocol::read_message(reader) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err("host closed the channel".into()),
        Err(e) => Err(format!("reading from host: {e}")),
    }
}

/// Runs one session; returns an error only if the channel itself broke.
pub fn run<T: Transport>(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
    agent: &mut Agent<T>,
) -> std::io::Result<Outcome> {
    let mut out = Out {
        w: writer,
        broken: None,
    };
    let outcome = session(reader, &mut out, agent);
    match out.broken {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

fn session<T: Transport, W: Write>(
    reader: &mut impl BufRead,
    out: &mut Out<W>,
    agent: &mut Agent<T>,
) -> Outcome {
    out.step(format!(
        "cvm-agent {} ready, protocol v{}",
        env!("CARGO_PKG_VERSION"),
        protocol::PROTOCOL_VERSION
    ));
    match agent.tpm.as_mut().map(|t| t.startup()) {
        Some(Ok(true)) => out.step("TPM2_Startup(CLEAR): TPM started"),
        Some(Ok(false)) => out.step("TPM2_Startup(CLEAR): TPM was already started"),
        Some(Err(e)) => out.send(&Message::Error {
            message: format!("TPM2_Startup: {e}"),
            fatal: false,
        }),
        None => out.send(&Message::Error {
            message: "no TPM configured".into(),
            fatal: false,
        }),
    }

    let (nonce, host_pull) = match next(reader) {
        Ok(Message::Hello { nonce, pull }) => match protocol::parse_nonce(&nonce) {
            Ok(n) => (n, pull),
            Err(e) => return out.fail(format!("bad hello: {e}")),
        },
        Ok(other) => return out.fail(format!("expected hello, got {other:?}")),
        Err(e) => return out.fail(e),
    };
    out.step(format!("hello received, nonce {} bytes", nonce.len()));

    let mut logs = Vec::new();
    let ev = evidence::collect(&agent.sources, agent.tpm.as_mut(), &nonce, &mut |l| {
        logs.push(l)
    });
    for l in logs {
        out.step(l);
    }
    out.send(&Message::Evidence {
        evidence: Box::new(ev),
    });

    let key = match next(reader) {
        Ok(Message::Key { key }) => match hex::decode(&key) {
            Ok(k) if k.len() == 32 => k,
            Ok(k) => return out.fail(format!("released key is {} bytes, expected 32", k.len())),
            Err(e) => return out.fail(format!("released key is not hex: {e}")),
        },
        Ok(Message::Refused { reason }) => {
            return out.fail(format!("key broker refused: {reason}"))
        }
        Ok(Message::Error { message, .. }) => return out.fail(format!("host error: {message}")),
        Ok(other) => return out.fail(format!("expected key or refused, got {other:?}")),
        Err(e) => return out.fail(e),
    };
    out.step("data-disk key released by the broker (32 bytes)");

    match &agent.data_disk {
        Some(cfg) => {
            let mut logs = Vec::new();
            let res = luks::run_plan(cfg, &key, &mut |l| logs.push(l));
            for l in logs {
                out.step(l);
            }
            if let Err(e) = res {
                return out.fail(format!("data disk: {e:#}"));
            }
        }
        None => out.step("no data disk configured: skipping LUKS"),
    }

    // A pull the host asks for goes to the data disk, under the agent's own signature policy.
    let host_req = match host_pull {
        Some(p) => match oci::ImageRef::parse(&p.image) {
            Ok(image) => {
                out.step(format!("host asks to pull {} from {}", p.image, p.registry_url));
                Some(oci::PullRequest {
                    image,
                    registry_url: p.registry_url,
                    dest: agent
                        .data_disk
                        .as_ref()
                        .map(|d| d.mount_point.join("images"))
                        .unwrap_or_else(|| "/run/cvm-images".into()),
                    cosign_public_key_pem: agent.pull.as_ref().and_then(|r| r.cosign_public_key_pem.clone()),
                })
            }
            Err(e) => return out.fail(format!("image the host asked for: {e}")),
        },
        None => None,
    };
    match host_req.as_ref().or(agent.pull.as_ref()) {
        Some(req) => {
            let mut logs = Vec::new();
            let res = oci::pull(req, &mut |l| logs.push(l));
            for l in logs {
                out.step(l);
            }
            if let Err(e) = res {
                return out.fail(format!("image pull: {e:#}"));
            }
        }
        None => out.step("no image configured: skipping pull"),
    }

    out.send(&Message::Done { ok: true });
    Outcome {
        ok: true,
        key_released: true,
    }
}
