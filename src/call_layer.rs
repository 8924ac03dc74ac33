//! The tower plumbing every layer of the server shares, so that each layer is only what it does around one call.
//!
//! A layer of the server (overload, authentication, caller rate, message limit, routing, partition gate) implements
//! [`AroundCall`]: given the request and the ready service inside it, answer, or pass the request on and look at the
//! answer. [`CallLayer`] makes a tower [`Layer`] of it; the [`Service`] it wraps around the router is [`Around`], the
//! same for every layer. It knows nothing of the crate: a leaf anyone may import.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body;
use tower::{Layer, Service};

/// The future of one call's answer.
pub type CallFuture<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

/// The service a layer passes calls on to: the router, or the next layer around it.
pub trait Next:
    Service<http::Request<Body>, Response = http::Response<Body>, Future: Send + 'static, Error: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S> Next for S where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Future: Send + 'static, Error: Send + 'static>
        + Clone
        + Send
        + 'static
{
}

/// What one layer does around a call.
pub trait AroundCall: Clone + Send + Sync + 'static {
    /// Answers `request`, by itself or by calling `next` (ready: [`Service::poll_ready`] returned ready for it).
    fn call<S: Next>(&self, request: http::Request<Body>, next: S) -> CallFuture<S::Error>;
}

/// The tower layer of an [`AroundCall`].
#[derive(Clone, Debug)]
pub struct CallLayer<A>(pub A);

impl<S, A: Clone> Layer<S> for CallLayer<A> {
    type Service = Around<S, A>;

    fn layer(&self, inner: S) -> Around<S, A> {
        Around { inner, around: self.0.clone() }
    }
}

/// The service [`CallLayer`] wraps around the service inside it.
#[derive(Clone, Debug)]
pub struct Around<S, A> {
    inner: S,
    around: A,
}

impl<S: Next, A: AroundCall> Service<http::Request<Body>> for Around<S, A> {
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = CallFuture<S::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The services are always ready; take the ready clone and leave a fresh one behind (tower's documented
        // pattern: the clone left behind is polled ready before its own call).
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        self.around.call(request, ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// Answers 418 to paths under `/refused`, passes the rest on and marks their answers.
    #[derive(Clone)]
    struct Marker;

    impl AroundCall for Marker {
        fn call<S: Next>(&self, request: http::Request<Body>, mut next: S) -> CallFuture<S::Error> {
            if request.uri().path().starts_with("/refused") {
                let mut answer = http::Response::new(Body::empty());
                *answer.status_mut() = http::StatusCode::IM_A_TEAPOT;
                return Box::pin(std::future::ready(Ok(answer)));
            }
            Box::pin(async move {
                let mut answer = next.call(request).await?;
                answer.headers_mut().insert("x-marked", http::HeaderValue::from_static("yes"));
                Ok(answer)
            })
        }
    }

    fn request(path: &str) -> http::Request<Body> {
        http::Request::builder().uri(path).body(Body::empty()).expect("request")
    }

    #[tokio::test]
    async fn a_layer_answers_by_itself_or_passes_the_call_on_and_sees_the_answer() {
        let router = tower::service_fn(|request: http::Request<Body>| async move {
            let mut answer = http::Response::new(Body::empty());
            answer.headers_mut().insert("x-path", request.uri().path().parse().expect("header"));
            Ok::<_, std::convert::Infallible>(answer)
        });
        let service = CallLayer(Marker).layer(router);

        let passed = service.clone().oneshot(request("/antrean.v1.X/Y")).await.expect("answer");
        assert_eq!(passed.headers()["x-path"], "/antrean.v1.X/Y", "the call reached the router");
        assert_eq!(passed.headers()["x-marked"], "yes", "the layer saw the answer");

        let refused = service.oneshot(request("/refused")).await.expect("answer");
        assert_eq!(refused.status(), http::StatusCode::IM_A_TEAPOT);
        assert!(refused.headers().get("x-path").is_none(), "the router was not called");
    }
}
