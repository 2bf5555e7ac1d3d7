//! A short-lived runtime for work that runs before the server starts or instead of it
//! (migrations, bootstrap, the `user`/`key` commands). Nothing made on it may outlive it.

use std::future::Future;

pub fn block_on<F: Future>(work: F) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    Ok(runtime.block_on(work))
}
