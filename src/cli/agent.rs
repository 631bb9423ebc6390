//! `shipctl reload` and `shipctl version`: one request to a running agent
//! over its control socket, and the runtime every control subcommand uses.

use crate::control::client::connect;
use crate::control::proto;
use std::path::Path;
use std::time::Duration;

/// A single-threaded runtime for one control command; `None` (reported)
/// when it cannot start.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("shipctl: cannot start a runtime: {e}");
            None
        }
    }
}

/// Asks the agent to load its pipeline again: 0 when applied, 1 when
/// refused (diagnostics on stderr) or unreachable.
pub fn reload(socket: &Path) -> i32 {
    let Some(rt) = runtime() else { return 1 };
    let answer = rt.block_on(async {
        let mut client = connect(socket).await.map_err(|e| e.to_string())?;
        client
            .reload(proto::ReloadRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(|s| s.message().to_owned())
    });
    match answer {
        Ok(reply) if reply.applied => {
            println!("reloaded: {}", reply.summary);
            0
        }
        Ok(reply) => {
            eprint!("{}", reply.diagnostics);
            eprintln!("shipctl reload: refused; the running pipeline continues");
            1
        }
        Err(e) => {
            eprintln!("shipctl reload: {e}");
            1
        }
    }
}

/// Prints shipctl's version and, when reachable, the agent's.
pub fn version(socket: &Path) -> i32 {
    println!("shipctl {}", env!("CARGO_PKG_VERSION"));
    let Some(rt) = runtime() else { return 1 };
    let answer = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), async {
            let mut client = connect(socket).await.map_err(|e| e.to_string())?;
            client
                .version(proto::VersionRequest {})
                .await
                .map(|r| r.into_inner())
                .map_err(|s| s.message().to_owned())
        })
        .await
        .unwrap_or_else(|_| Err("no answer within 2s".into()))
    });
    match answer {
        Ok(v) => {
            let pipeline = if v.pipeline.is_empty() {
                "embedded default pipeline".to_owned()
            } else {
                v.pipeline
            };
            println!("shipd {} (pid {}, {pipeline})", v.version, v.pid);
        }
        Err(e) => println!("shipd: not reachable ({e})"),
    }
    0
}
