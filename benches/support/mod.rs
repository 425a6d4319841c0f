//! What the benches share: a trivial inner service and a poll for futures that are ready at once.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use tower::Service;

/// The request and response body of every bench.
pub type Body = String;

/// An inner service that answers 200 with an empty body at once.
pub fn inner() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone
{
    tower::service_fn(|_req: Request<Body>| std::future::ready(Ok(Response::new(Body::new()))))
}

/// Polls a future that must be ready at once (every benchmarked future is).
pub fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a benchmarked future did not complete on its first poll"),
    }
}
