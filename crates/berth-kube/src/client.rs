//! The API client: kube-rs, with client-side QPS/burst limiting as
//! `clientConnection` configures it (client-go's token bucket).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::metrics::RequestLabels;
use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::time::Instant;

/// client-go's token bucket (QPS, burst), by reservation: each caller takes
/// the next free slot and sleeps until it, once. (governor's `until_ready`
/// wakes every waiter at each token and puts all but one back to sleep: with
/// hundreds of binding cycles waiting under QPS 50 that cost more CPU than
/// scheduling the pods.) The bucket's state is the time the next slot frees
/// up; it may run `burst` slots ahead of now, which is the burst.
pub struct Bucket {
    interval: Duration,
    burst: u32,
    next: Mutex<Instant>,
}

impl Bucket {
    fn new(interval: Duration, burst: u32) -> Bucket {
        Bucket { interval, burst: burst.max(1), next: Mutex::new(Instant::now()) }
    }

    /// The slot this caller gets: now if a token is free, else later (the
    /// generic cell rate algorithm, with the wait reserved rather than refused).
    fn reserve(&self, now: Instant) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        // A full bucket holds `burst` tokens: a caller may go as long as the
        // bucket's time is at most that many slots ahead.
        let ahead = self.interval * (self.burst - 1);
        let go = next.checked_sub(ahead).map_or(now, |t| t.max(now));
        *next = (*next).max(go) + self.interval;
        go
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let now = Instant::now();
        let slot = self.reserve(now);
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
    }
}

/// Two buckets, as kube-scheduler has two clients: one for its own calls,
/// one for events, so events never slow bindings down.
#[derive(Clone)]
pub struct ApiClient {
    /// Berth's own calls; each waits for [`ApiClient::throttle`] first.
    pub client: kube::Client,
    /// The client plugins get (`berth::live::client`): the same connection,
    /// deadline and QPS bucket as Berth's own calls, with the wait for a
    /// token inside the client, since plugin code cannot be trusted to
    /// call `throttle`.
    pub plugin_client: kube::Client,
    limiter: Option<Arc<Bucket>>,
    event_limiter: Option<Arc<Bucket>>,
}

impl ApiClient {
    /// Waits for a token of the QPS/burst bucket (no wait when unlimited).
    pub async fn throttle(&self) {
        if let Some(l) = &self.limiter {
            l.acquire().await;
        }
    }

    /// The same for events, from their own bucket.
    pub async fn throttle_events(&self) {
        if let Some(l) = &self.event_limiter {
            l.acquire().await;
        }
    }

    /// Connects with the kubeconfig at `path`, or, without one, the usual
    /// inference: `$KUBECONFIG`, `~/.kube/config`, then the in-cluster
    /// service account. `qps` of 0 means no client-side limit.
    /// Each request's outcome is counted in `requests` (client-go's
    /// `rest_client_requests_total`).
    pub async fn connect(path: Option<&Path>, qps: f32, burst: i32, requests: Requests) -> Result<ApiClient> {
        let mut config = match path {
            Some(p) => {
                let kc = Kubeconfig::read_from(p).with_context(|| format!("reading kubeconfig {}", p.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                    .await
                    .with_context(|| format!("kubeconfig {}", p.display()))?
            }
            None => kube::Config::infer().await.context("no kubeconfig given and none found (KUBECONFIG, ~/.kube/config, in-cluster)")?,
        };
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(300));
        let own = limiter(qps, burst);
        let [client, plugin_client] = http2_clients(config, REQUEST_DEADLINE, own.clone(), requests)
            .with_context(|| path.map_or("kubeconfig".to_string(), |p| format!("kubeconfig {}", p.display())))?;
        Ok(ApiClient { client, plugin_client, limiter: own, event_limiter: limiter(qps, burst) })
    }
}

/// How long a call waits for its answer to begin: a little over the API
/// server's own limit for non-watch requests (`--request-timeout`, 60 s), so
/// the server's answer (even its timeout) always comes first when it can.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(70);

/// A call whose answer did not begin within the deadline.
#[derive(Debug, thiserror::Error)]
#[error("the API server did not answer within {0:?} (request deadline)")]
pub struct NoAnswer(pub Duration);

/// After this long without a frame on a connection, ping it (client-go's `ReadIdleTimeout`).
pub const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(30);
/// A ping unanswered this long drops the connection (client-go's `PingTimeout`).
pub const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(15);

/// kube-rs's default stack speaks HTTP/1.1 only, so concurrent bindings and
/// events each open a TLS connection of their own, and the handshakes cost
/// the API server more than the requests. Like client-go, negotiate HTTP/2
/// (ALPN) and multiplex every request and watch over one connection.
///
/// Two clients over that one connection: the first leaves QPS limiting to
/// its caller, the second waits for a token of `limiter` before each call.
fn http2_clients(config: kube::Config, deadline: Duration, limiter: Option<Arc<Bucket>>, requests: Requests) -> Result<[kube::Client; 2]> {
    use kube::client::ConfigExt;
    // Berth's connector speaks to the API server directly; a proxy it did
    // not use would be a silent surprise, so one named is refused.
    if let Some(proxy) = &config.proxy_url {
        anyhow::bail!(
            "kubeconfig: clusters[].cluster.proxy-url {proxy}: Berth does not connect through proxies; remove proxy-url or reach the API server directly"
        );
    }
    let tls = config.rustls_client_config().context("TLS configuration")?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_all_versions().wrap_connector(http);
    // client-go's HTTP/2 health check: a ping after 30 s without a frame,
    // and the connection dropped (its requests and watches failing, to be
    // made again on a new one) when the ping gets no answer in 15 s. Without
    // it a connection that goes silent without closing (a load balancer's
    // fail-over, a lost NAT entry) holds every watch until TCP gives up.
    let inner: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .http2_keep_alive_interval(HTTP2_PING_INTERVAL)
            .http2_keep_alive_timeout(HTTP2_PING_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            .build(https);
    let host: Arc<str> = config.cluster_url.authority().map_or("", |a| a.as_str()).into();
    let stack = |throttle: Option<Arc<Bucket>>| -> Result<kube::Client> {
        let service = tower::ServiceBuilder::new()
            // Outermost: the wait for a token is not part of the deadline.
            .option_layer(throttle.map(throttle_layer))
            // Counted with their outcome, a deadline's included.
            .layer_fn(|inner| Counted { inner, requests: requests.clone(), host: host.clone() })
            .layer(config.base_uri_layer())
            .option_layer(config.auth_layer().context("credentials")?)
            .layer(config.extra_headers_layer().context("headers")?)
            // Every call gets its answer's head within the deadline, or fails (a
            // watch's head comes at once; its events are bounded by the pings
            // and the server's timeoutSeconds).
            .map_future(move |answer| async move {
                match tokio::time::timeout(deadline, answer).await {
                    Ok(r) => r,
                    Err(_) => Err(Box::new(NoAnswer(deadline)) as BoxError),
                }
            })
            .map_err(|e: hyper_util::client::legacy::Error| Box::new(e) as BoxError)
            // A clone shares the connection pool.
            .service(inner.clone());
        Ok(kube::Client::new(service, config.default_namespace.clone()))
    };
    Ok([stack(None)?, stack(limiter)?])
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request, once its token is there.
type Throttled<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, BoxError>> + Send>>;

/// Where a client counts its requests by outcome, method and host.
pub type Requests = prometheus_client::metrics::family::Family<RequestLabels, prometheus_client::metrics::counter::Counter>;

/// A service that counts each call's outcome in `requests`.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    requests: Requests,
    host: Arc<str>,
}

impl<S, B, R> tower::Service<hyper::Request<B>> for Counted<S>
where
    S: tower::Service<hyper::Request<B>, Response = hyper::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: hyper::Request<B>) -> Self::Future {
        let method = request.method().as_str().to_string();
        let (requests, host) = (self.requests.clone(), self.host.clone());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            let code = answer.as_ref().map_or_else(|_| "<error>".to_string(), |a| a.status().as_u16().to_string());
            requests.get_or_create(&RequestLabels { code, method, host: host.to_string() }).inc();
            answer
        })
    }
}

/// A layer that waits for a token of `bucket` before each call.
fn throttle_layer<T: Send + 'static>(bucket: Arc<Bucket>) -> tower::filter::AsyncFilterLayer<impl Fn(T) -> Throttled<T> + Clone> {
    tower::filter::AsyncFilterLayer::new(move |request: T| {
        let bucket = bucket.clone();
        Box::pin(async move {
            bucket.acquire().await;
            Ok(request)
        }) as Throttled<T>
    })
}

/// The longest wait between two tokens of a bucket.
const LONGEST_PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);

fn limiter(qps: f32, burst: i32) -> Option<Arc<Bucket>> {
    if qps <= 0.0 || !qps.is_finite() {
        return None;
    }
    // A qps so small that a token would take longer than a year gives one a
    // year: the same in practice, and no overflow in the bucket's arithmetic.
    let period = Duration::try_from_secs_f64(1.0 / qps as f64).unwrap_or(LONGEST_PERIOD).clamp(Duration::from_nanos(1), LONGEST_PERIOD);
    Some(Arc::new(Bucket::new(period, burst.max(1) as u32)))
}

/// For tests: an API server that accepts every connection and never
/// answers (a black-holed one), and a client configuration for it with no
/// client-side timeouts, so only the bound under test can end a wait.
#[cfg(test)]
pub(crate) async fn silent_api_server() -> kube::Config {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let mut config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    config.read_timeout = None;
    config.write_timeout = None;
    config.connect_timeout = None;
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kubeconfig_proxy_is_refused_by_name_not_ignored() {
        let mut config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        config.proxy_url = Some("http://proxy.example:3128".parse().unwrap());
        let err = http2_clients(config, REQUEST_DEADLINE, None, Requests::default()).err().expect("a proxy must be refused").to_string();
        assert!(err.contains("proxy-url http://proxy.example:3128/") && err.contains("does not connect through proxies"), "{err}");
        assert!(http2_clients(kube::Config::new("https://127.0.0.1:6443".parse().unwrap()), REQUEST_DEADLINE, None, Requests::default())
            .is_ok());
    }

    /// An API server that accepts the connection and never answers: the
    /// call fails at the deadline instead of waiting for as long as TCP does.
    #[tokio::test(start_paused = true)]
    async fn a_call_the_api_server_never_answers_fails_at_the_deadline() {
        let [client, _] = http2_clients(silent_api_server().await, REQUEST_DEADLINE, None, Requests::default()).unwrap();
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
        // Paused time: without the deadline the call never ends and the
        // outer wait (an hour of virtual time) fails the test.
        let got = tokio::time::timeout(Duration::from_secs(3600), nodes.get("n")).await.expect("the call ended");
        let err = got.expect_err("nothing answered").to_string();
        assert!(err.contains("request deadline"), "{err}");
    }

    /// The plugins' client takes a token of Berth's bucket for each call (the
    /// call ends at the deadline: nothing answers); Berth's own client leaves
    /// that to its caller.
    #[tokio::test(start_paused = true)]
    async fn the_plugin_client_takes_a_token_of_berths_bucket_for_each_call() {
        // One token, refilled every thousand seconds.
        let bucket = limiter(0.001, 1).unwrap();
        let [own, plugins] = http2_clients(silent_api_server().await, REQUEST_DEADLINE, Some(bucket.clone()), Requests::default()).unwrap();
        let call = |c: kube::Client| async move {
            let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(c);
            tokio::time::timeout(Duration::from_secs(3600), nodes.get("n")).await.expect("the call ended").expect_err("nothing answers");
        };
        call(own).await;
        let now = Instant::now();
        assert_eq!(bucket.reserve(now), now, "Berth's own client took no token: its caller throttles");
        // That reservation emptied the bucket: the plugins' call waits a
        // thousand seconds for the next token, then the deadline.
        let start = Instant::now();
        call(plugins).await;
        assert!(Instant::now() - start >= Duration::from_secs(1000) + REQUEST_DEADLINE, "the plugin's call waited for no token");
    }

    #[test]
    fn a_tiny_qps_or_a_huge_burst_is_a_slow_bucket_not_a_panic() {
        for (qps, burst) in [(f32::MIN_POSITIVE, i32::MAX), (1e-30, 1), (f32::MAX, i32::MAX), (1e-9, -5)] {
            let bucket = limiter(qps, burst).expect("a positive qps limits");
            let now = Instant::now();
            // The first token is free, whatever the rate.
            assert_eq!(bucket.reserve(now), now, "qps {qps} burst {burst}");
            for _ in 0..3 {
                assert!(bucket.reserve(now) >= now);
            }
        }
        assert!(limiter(f32::NAN, 1).is_none() && limiter(f32::INFINITY, 1).is_none(), "not a rate: unlimited");
    }

    #[test]
    fn limiter_follows_qps_and_burst() {
        assert!(limiter(0.0, 100).is_none(), "qps 0: unlimited");
        let l = limiter(1.0, 3).unwrap();
        let now = Instant::now();
        // The burst is available at once, then one slot per second, each
        // caller its own.
        for _ in 0..3 {
            assert_eq!(l.reserve(now), now);
        }
        assert_eq!(l.reserve(now), now + Duration::from_secs(1));
        assert_eq!(l.reserve(now), now + Duration::from_secs(2));
        // Idle for ten seconds: the bucket refills to its burst, no more.
        let later = now + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(l.reserve(later), later);
        }
        assert_eq!(l.reserve(later), later + Duration::from_secs(1));
    }
}
