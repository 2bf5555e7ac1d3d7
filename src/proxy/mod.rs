//! The public listener: one `ProxyHttp` whose `request_filter` runs a short list of named
//! stages (route → authenticate → prepare the job) and whose upstream phases pick a backend,
//! retry refused connections elsewhere, and keep backend errors meaningful.

pub mod backend_error;
mod backend_request;
pub mod caching;
mod client_header;
pub mod ctx;
pub mod fault;
mod request_line;
pub mod route;
pub mod stages;

use crate::access::{self, Access, Asked, Denied};
use crate::error::{GatewayError, GatewayResult};
use crate::respond::Answer;
use crate::state::AppState;
use crate::{health, request_id};
use async_trait::async_trait;
use bytes::Bytes;
use ctx::Ctx;
use fault::Fault;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::upstreams::peer::HttpPeer;
use request_line::RequestLine;
use route::Route;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct Gateway {
    state: Arc<AppState>,
}

/// What the stages decided.
enum Next {
    /// Answer from the gateway itself.
    Answer(Answer),
    /// Send the prepared job to a backend.
    Proxy,
}

/// How long an unread request body is drained after an early error answer.
const LINGER: Duration = Duration::from_secs(5);

impl Gateway {
    pub fn new(state: Arc<AppState>) -> Gateway {
        Gateway { state }
    }

    /// A request, top to bottom: resolve the route, admit it, run its endpoint.
    async fn handle(&self, session: &mut Session, ctx: &mut Ctx) -> GatewayResult<Next> {
        let ip = stages::auth::client_ip(&self.state, session);
        ctx.client_ip = Some(ip);
        ctx.route = self.resolve(session, ctx, ip).await?;
        self.admit(session, ctx, ip).await?;
        self.endpoint(session, ctx, ip).await
    }

    /// The route; a path no route serves is a 404 that spends an IP token.
    async fn resolve(&self, session: &Session, ctx: &mut Ctx, ip: IpAddr) -> GatewayResult<Route> {
        let req = session.req_header();
        route::check_request(req)?;
        match route::resolve(&req.method, req.uri.path()) {
            Err(e @ GatewayError::NotFound(_)) => {
                Err(ctx.refused(access::spend_ip(&self.state, ip, e).await))
            }
            other => other,
        }
    }

    /// The route's access class, through the one admission step both listeners share.
    async fn admit(&self, session: &Session, ctx: &mut Ctx, ip: IpAddr) -> GatewayResult<()> {
        let access = ctx.route.access();
        let asked = Asked {
            key: stages::auth::api_key(session),
            ip,
            endpoint: ctx.route.template(),
            action: None,
        };
        let admitted = access::admit(&self.state, access, asked, &mut ctx.caller).await;
        if let Some(mut admission) = admitted.map_err(|r| ctx.refused(r))? {
            ctx.limit_headers = std::mem::take(&mut admission.headers);
            if access == Access::Metered {
                ctx.admission = Some(admission);
            }
        }
        Ok(())
    }

    /// The admitted request's endpoint.
    async fn endpoint(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        ip: IpAddr,
    ) -> GatewayResult<Next> {
        let state = &self.state;
        // Owned only on the routes that go on to borrow the session mutably (upload).
        let query = session.req_header().uri.query().unwrap_or("");
        let answer = match ctx.route.clone() {
            Route::Health => health::health(state),
            Route::Ready => health::ready(state, &ctx.request_id),
            Route::OpenApi => crate::openapi::serve(),
            Route::Source(id) => match Box::pin(stages::source::serve(state, &id, query)).await {
                Err(e @ GatewayError::Denied(_)) => {
                    return Err(ctx.refused(access::spend_ip(state, ip, e).await))
                }
                other => other?,
            },
            // The routes past this one do database work or stream uploads: their futures are
            // boxed, so the request's own future (moved into a box by every request) stays
            // the size of the convert path.
            Route::Upload => {
                let query = query.to_string();
                return Box::pin(self.upload(session, ctx, &query)).await;
            }
            Route::Convert => {
                // A body would be streamed to the backend as it came: refused, never relayed.
                if route::has_body(session.req_header()) {
                    return Err(GatewayError::BadRequest(
                        "convert takes no request body".into(),
                    ));
                }
                let user = &caller(ctx)?.user_id;
                ctx.job = stages::convert::prepare(state, user, query).await?;
                return Ok(Next::Proxy);
            }
            Route::Quota(id) => {
                let caller = caller(ctx)?;
                if caller.user_id != id {
                    return Err(Denied::NotOwnQuota.into());
                }
                let limits = crate::limits::rules::UserLimits::of(&state.config(), &caller);
                let report = Box::pin(state.limits.report(&state.store, &id, &limits)).await?;
                Answer::json(http::StatusCode::OK, &report)
            }
            Route::Images => Box::pin(stages::images::list(state, &caller(ctx)?.user_id)).await?,
            Route::DeleteImage(id) => {
                Box::pin(stages::images::delete(state, &caller(ctx)?.user_id, &id)).await?
            }
            Route::Unknown => return Err(GatewayError::NotFound("no such route".into())),
        };
        Ok(Next::Answer(answer))
    }

    /// `POST /api/v1/upload`: reserve the storage it may use, receive it, then proxy it.
    async fn upload(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        query: &str,
    ) -> GatewayResult<Next> {
        let state = &self.state;
        let admission = ctx.admission.as_ref().ok_or_else(unadmitted)?;
        let wanted = stages::upload::wanted(state, session)?;
        let allowance = state
            .limits
            .upload_cap(&state.store, admission, wanted)
            .await?;
        let user = &admission.entry.user_id;
        ctx.job =
            stages::upload::receive(state, session, user, query, allowance.cap.as_ref()).await?;
        // The row is committed: its bytes count as stored from here on.
        allowance.release().await;
        state.limits.record_upload(&state.store, admission).await;
        Ok(Next::Proxy)
    }

    /// Refusals operators watch for, as `event` lines named by the refusal's type:
    /// `auth_failure`, `auth_lockout`, `ip_blocked`, `access_denied`, `rate_limited`,
    /// `quota_exceeded`. Never the key, only its public id when known.
    fn security_event(&self, ctx: &Ctx, err: &GatewayError) {
        security_event(&self.state, err, |line| {
            line["request_id"] = (&*ctx.request_id).into();
            line["endpoint"] = ctx.route.template().into();
            line["client_ip"] = ctx.client_ip.map(|ip| ip.to_string()).into();
            line["user_id"] = ctx.caller.as_ref().map(|c| c.user_id.as_str()).into();
            line["key_id"] = ctx.caller.as_ref().map(|c| c.key_id.as_str()).into();
        });
    }

    /// Count the finished request in the metrics.
    fn record(&self, session: &Session, ctx: &Ctx, status: u16, elapsed: Duration) {
        let metrics = &self.state.metrics;
        metrics.active_connections.dec();
        metrics.count_request(&crate::metrics::Finished {
            method: route::method_label(&session.req_header().method),
            endpoint: ctx.route.template(),
            status,
            user: ctx.caller.as_ref().map(|c| &c.user),
            elapsed,
        });
        if let Some(backend) = &ctx.upstream.current {
            metrics.count_backend_answer(&crate::metrics::BackendAnswer {
                url: &backend.url,
                status: ctx.upstream.status,
                response_time: ctx.upstream.response_time,
            });
        }
    }
}

/// The admitted caller (every route past admission but the open ones has one).
fn caller(ctx: &Ctx) -> GatewayResult<Arc<crate::identity::Identity>> {
    ctx.caller.clone().ok_or_else(unadmitted)
}

fn unadmitted() -> GatewayError {
    GatewayError::Internal("the route ran without its admission".into())
}

/// Log a refusal's security event (and count an access refusal); `fill` adds the request's
/// fields. Shared by both listeners.
pub fn security_event(
    state: &AppState,
    err: &GatewayError,
    fill: impl FnOnce(&mut serde_json::Value),
) {
    let event = match err {
        GatewayError::Denied(denied) => {
            state
                .metrics
                .access_denied
                .with_label_values(&[denied.reason()])
                .inc();
            denied.event()
        }
        GatewayError::RateLimited { .. } => "rate_limited",
        GatewayError::QuotaExceeded { .. } => "quota_exceeded",
        _ => return,
    };
    let mut line = serde_json::json!({"event": event, "reason": err.to_string()});
    if let GatewayError::Denied(denied) = err {
        line["denied"] = denied.reason().into();
    }
    fill(&mut line);
    if let (Some(details), Some(map)) = (err.details(), line.as_object_mut()) {
        if let Some(extra) = details.as_object() {
            map.extend(extra.clone());
        }
    }
    log::warn!("{line}");
}

#[async_trait]
impl ProxyHttp for Gateway {
    /// Boxed: Pingora keeps the context inside the future it moves into a fresh box for every
    /// request (in more than one of its states), so a pointer here spares copying the whole
    /// context each time.
    type CTX = Box<Ctx>;

    fn new_ctx(&self) -> Box<Ctx> {
        Box::new(Ctx::new())
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<()> {
        self.state.metrics.active_connections.inc();
        let config = self.state.config();
        let server = &config.server;
        session.set_read_timeout(Some(server.read_timeout.get()));
        session.set_write_timeout(Some(server.write_timeout.get()));
        if self.state.drain.is_draining() {
            // Pingora then answers with `Connection: close`.
            session.set_keepalive(None);
        } else {
            session.set_keepalive(Some(server.keepalive_timeout.get().as_secs()));
        }
        ctx.request_id = request_id::RequestId::from_header(
            session.req_header().headers.get(request_id::HEADER),
        );
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<bool> {
        let mut answer = match self.handle(session, ctx).await {
            Ok(Next::Proxy) => {
                backend_request::trim_client(session.req_header_mut());
                return Ok(false);
            }
            Ok(Next::Answer(answer)) => answer,
            Err(err) => {
                self.security_event(ctx, &err);
                Answer::error(&err, &ctx.request_id)
            }
        };
        answer.headers.append(&mut ctx.limit_headers);
        ctx.status = answer.status.as_u16();
        let unread_body = !session.is_body_done();
        if unread_body {
            // An early answer (413, 401, 402, 429…) while the client is still sending.
            session.set_close_on_response_before_downstream_finish(false);
            session.set_total_drain_timeout(Some(LINGER));
        }
        answer.send(session, &ctx.request_id).await?;
        if unread_body {
            ctx.body_billed = Some(session.body_bytes_read());
            // Lingering close, as nginx does: read and drop the rest of the body (for at most
            // LINGER) before the connection can close. Closing a socket with unread data makes
            // the kernel send a reset, which destroys the answer before a client that sends
            // its whole body first (Python's urllib, `Connection: close`) gets to read it.
            if let Err(e) = session.drain_request_body().await {
                // Out of time (or the client failed): close, so Pingora does not linger again
                // before reusing the connection.
                log::debug!("request body not drained: {e}");
                session.set_keepalive(None);
            }
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Box<Ctx>,
    ) -> Result<Box<HttpPeer>> {
        let leg = &mut ctx.upstream;
        let generation = leg
            .generation
            .get_or_insert_with(|| self.state.pool.current());
        let Some(backend) = generation.pick(leg.tried) else {
            // After a busy backend, "no other backend to try" still means "come back soon".
            ctx.failure = Some(if leg.busy_retries > 0 {
                GatewayError::BackendBusy
            } else {
                GatewayError::NoHealthyBackend
            });
            return Error::e_explain(ErrorType::HTTPStatus(503), "no healthy backend");
        };
        ctx.upstream.tried.add(backend.index);
        backend.count_request();
        let peer = crate::upstream::affinity::pooled_here(&backend.peer);
        ctx.upstream.current = Some(backend);
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        let host = ctx.upstream.current.as_ref().map(|b| b.host.clone());
        *upstream = backend_request::build(upstream, &ctx.job, host, ctx.request_id.value());
        ctx.upstream.sent_at = Some(std::time::Instant::now());
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Box<Ctx>,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(backend) = &ctx.upstream.current {
            crate::upstream::mark_failed(backend, e.etype().as_str());
        }
        // Try every backend once. When the last one refuses too and none is healthy any more,
        // the answer is 503 (no healthy backend) rather than 502.
        let retry = ctx.upstream.tried.count() < ctx.upstream.backends();
        if !retry && self.state.pool.healthy_count() == 0 {
            ctx.failure = Some(GatewayError::NoHealthyBackend);
        }
        e.set_retry(retry);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        _session: &mut Session,
        e: Box<Error>,
        ctx: &mut Box<Ctx>,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("backend {peer}"));
        let fault = fault::blame(&e, &ctx.upstream, client_reused);
        let leg = &mut ctx.upstream;
        let untried = leg.tried.count() < leg.backends();
        let retry = match fault {
            // The client hung up or could not be read or written: nothing to retry, and no
            // backend's fault.
            Fault::Downstream | Fault::AfterAnswer | Fault::Timeout => false,
            Fault::Busy => {
                // imgproxy's queue is full: try one other backend, then tell the client to
                // come back (503 with Retry-After). A busy backend is not a broken one.
                leg.busy = false;
                let retry = untried && leg.busy_retries == 0;
                leg.busy_retries += 1;
                if !retry {
                    ctx.failure = Some(GatewayError::BackendBusy);
                }
                retry
            }
            Fault::StaleConnection => {
                // A pooled keep-alive connection the backend had already closed says nothing
                // about the backend: give it another try on a new connection.
                leg.stale += 1;
                if let Some(backend) = &leg.current {
                    leg.tried.remove(backend.index);
                }
                true
            }
            Fault::Backend => {
                if let Some(backend) = &leg.current {
                    crate::upstream::mark_failed(backend, e.etype().as_str());
                }
                untried
            }
        };
        e.set_retry(retry);
        e
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        ctx.upstream.response_time = ctx.upstream.sent_at.map(|t| t.elapsed());
        ctx.upstream.status = Some(upstream.status.as_u16());
        if upstream.status == http::StatusCode::TOO_MANY_REQUESTS
            && backend_error::queue_full(upstream)
        {
            // imgproxy's queue is full. Nothing has reached the client yet: `error_while_proxy`
            // tries another backend once, then answers 503 with Retry-After.
            ctx.upstream.busy = true;
            return Err(
                Error::explain(ErrorType::HTTPStatus(429), "the backend is busy").into_up(),
            );
        }
        ctx.upstream.responded = true;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        let extra = ctx.limit_headers.len();
        let header = if response.status.as_u16() >= 400 {
            if let Some(id) = ctx.job.image_id.take() {
                // Boxed: a rare await whose state would otherwise widen the future that
                // async-trait copies into a box for every response.
                Box::pin(stages::upload::discard(&self.state, &id)).await;
            }
            let length = backend_error::content_length(response);
            let capture =
                backend_error::Capture::new(response.status.as_u16(), length, ctx.job.source);
            let header = client_header::error(response, capture.client_status(), extra);
            ctx.upstream.error = Some(capture);
            header
        } else {
            let config = self.state.config();
            let backend = response.headers.get(http::header::CACHE_CONTROL);
            let value =
                caching::image_cache_control(backend, config.imgproxy.cache_control.as_deref())
                    .or_err(ErrorType::InvalidHTTPHeader, "cache-control")?;
            client_header::image(response, value, ctx.job.image_id.as_deref(), extra)?
        };
        ctx.status = header.status.as_u16();
        // The limit headers are sent once: moved, not cloned.
        let limits = std::mem::take(&mut ctx.limit_headers);
        *response = client_header::finish(header, ctx.request_id.value(), limits);
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<Ctx>,
    ) -> Result<Option<Duration>> {
        if let Some(capture) = ctx.upstream.error.as_mut() {
            if let Some(chunk) = body.take() {
                capture.push(&chunk);
            }
            if end_of_stream {
                *body = Some(Bytes::from(crate::respond::error_json(
                    &capture.error(),
                    &ctx.request_id,
                )));
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Box<Ctx>,
    ) -> FailToProxy {
        if let Some(id) = ctx.job.image_id.take() {
            stages::upload::discard(&self.state, &id).await;
        }
        let failure = ctx.failure.take().or_else(|| fault::client_error(e));
        let mut code = 0;
        if let Some(err) = failure {
            if session.response_written().is_none() {
                code = err.status().as_u16();
                let mut answer = Answer::error(&err, &ctx.request_id);
                answer.headers.append(&mut ctx.limit_headers);
                if let Err(write) = answer.send(session, &ctx.request_id).await {
                    log::debug!("could not send error response: {write}");
                }
            }
        }
        ctx.status = code;
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Box<Ctx>) {
        if let Some(admission) = &ctx.admission {
            let read = ctx.body_billed.unwrap_or_else(|| session.body_bytes_read());
            let bytes = read + session.body_bytes_sent();
            self.state
                .limits
                .record_bandwidth(admission, bytes as u64)
                .await;
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(ctx.status);
        let elapsed = ctx.started.elapsed();
        let line = RequestLine {
            event: "request",
            request_id: &ctx.request_id,
            method: session.req_header().method.as_str(),
            endpoint: ctx.route.template(),
            path: session.req_header().uri.path(),
            status,
            duration: elapsed,
            user_id: ctx.caller.as_ref().map(|c| c.user_id.as_str()),
            key_id: ctx.caller.as_ref().map(|c| c.key_id.as_str()),
            client_ip: ctx.client_ip,
            backend: ctx.upstream.current.as_ref().map(|b| b.url.as_str()),
            bytes_in: session.body_bytes_read(),
            bytes_out: session.body_bytes_sent(),
            backend_status: ctx.upstream.status,
            attempts: ctx.upstream.tried.count(),
            image_id: ctx.job.image_id.as_deref(),
            error: e.map(|e| e.etype().as_str()),
        };
        line.log(module_path!());
        self.record(session, ctx, status, elapsed);
    }
}
