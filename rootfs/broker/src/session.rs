//! One broker session on the host end of the agent channel: the agent's first message →
//! `hello{fresh nonce}` → evidence →
//! `key` or `refused` → collect the agent's steps until `done` or end of stream.
//! Every agent step and error is echoed on stderr and kept in the [`Outcome`].

use crate::policy::{self, ReferencePcrs};
use crate::verify;
use cvm_agent::protocol::{self, Evidence, Message};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};

/// Broker configuration (test fixture).
#[derive(Debug, Clone)]
pub struct Broker {
    pub reference: ReferencePcrs,
    /// The one AK whose quotes are accepted: hex `TPMT_PUBLIC`, as the agent sends it in
    /// `QuoteEvidence::ak_public`, read from the TPM before the guest ran (enrollment).
    pub enrolled_ak: String,
    pub key: [u8; 32],
    /// An image to ask the agent to pull after the key (sent in `hello`).
    pub pull: Option<protocol::PullSpec>,
}

/// What happened in a session.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub released: bool,
    /// The reason sent in `refused`, if the key was refused.
    pub refusal: Option<String>,
    pub agent_steps: Vec<String>,
    pub agent_errors: Vec<String>,
    /// The agent's `done.ok`, if it said `done`.
    pub agent_done: Option<bool>,
    pub evidence: Option<Evidence>,
}

/// 32 bytes from the OS RNG.
pub fn fresh_nonce() -> std::io::Result<[u8; 32]> {
    let mut n = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut n)?;
    Ok(n)
}

/// Decides on one evidence message (pure): the key or the refusal reason.
pub fn decide(broker: &Broker, nonce: &[u8], ev: &Evidence) -> Result<(), String> {
    let quote = ev.quote.as_ref().ok_or_else(|| {
        format!(
            "evidence has no TPM quote (agent problems: {})",
            ev.problems.join("; ")
        )
    })?;
    let empty = BTreeMap::new();
    let reported = ev.pcrs.get("sha256").unwrap_or(&empty);
    let verified = verify::verify_quote(quote, &broker.enrolled_ak, nonce, reported)
        .map_err(|e| format!("quote rejected: {e}"))?;
    policy::check_reference(&broker.reference, reported, &verified.quoted_pcrs)
        .map_err(|e| e.to_string())?;
    // The PCRs bind the root hash (command line); a block that does not match it is refused by
    // dm-verity as it is read, and the agent reports that read failure.
    match ev.dm_devices.iter().find_map(|d| {
        d.read_check
            .as_deref()
            .filter(|c| !c.starts_with("ok"))
            .map(|c| (d, c))
    }) {
        Some((d, c)) => Err(format!(
            "dm-verity device {} ({}) failed the integrity read: {c}",
            d.name.as_deref().unwrap_or("?"),
            d.dev
        )),
        None => Ok(()),
    }
}

fn send(w: &mut impl Write, msg: &Message) -> anyhow::Result<()> {
    w.write_all(&protocol::encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Serves one agent; errors only for channel failures.
pub fn serve(
    broker: &Broker,
    reader: &mut impl BufRead,
    writer: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let nonce = fresh_nonce()?;
    let mut out = Outcome::default();
    let mut hello_sent = false;
    let mut answered = false;
    loop {
        let msg = match protocol::read_message(reader) {
            Ok(Some(m)) => m,
            Ok(None) => {
                eprintln!("cvm-mock-kbs: agent closed the channel");
                break;
            }
            Err(e) => {
                out.agent_errors.push(format!("protocol: {e}"));
                eprintln!("cvm-mock-kbs: protocol error: {e}");
                break;
            }
        };
        // `hello` goes out once the agent has said something (its `ready` step): over
        // virtio-serial, bytes the host writes before the guest opens its port are lost.
        if !hello_sent {
            eprintln!("cvm-mock-kbs: sending hello, nonce {}", hex::encode(nonce));
            send(
                writer,
                &Message::Hello {
                    nonce: hex::encode(nonce),
                    pull: broker.pull.clone(),
                },
            )?;
            hello_sent = true;
        }
        match msg {
            Message::Step { message } => {
                eprintln!("agent: {message}");
                out.agent_steps.push(message);
            }
            Message::Error { message, fatal } => {
                eprintln!("agent ERROR (fatal={fatal}): {message}");
                out.agent_errors.push(message);
            }
            Message::Evidence { evidence } => {
                let reply = if answered {
                    Err("evidence already answered for this nonce".to_string())
                } else {
                    decide(broker, &nonce, &evidence)
                };
                answered = true;
                match reply {
                    Ok(()) => {
                        eprintln!("cvm-mock-kbs: evidence accepted, releasing key");
                        out.released = true;
                        send(
                            writer,
                            &Message::Key {
                                key: hex::encode(broker.key),
                            },
                        )?;
                    }
                    Err(reason) => {
                        eprintln!("cvm-mock-kbs: refusing: {reason}");
                        out.refusal = Some(reason.clone());
                        send(writer, &Message::Refused { reason })?;
                    }
                }
                out.evidence = Some(*evidence);
            }
            Message::Done { ok } => {
                eprintln!("cvm-mock-kbs: agent done, ok={ok}");
                out.agent_done = Some(ok);
                break;
            }
            other => {
                let m = format!("unexpected message from agent: {other:?}");
                eprintln!("cvm-mock-kbs: {m}");
                out.agent_errors.push(m);
            }
        }
    }
    Ok(out)
}
