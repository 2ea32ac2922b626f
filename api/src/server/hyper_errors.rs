//! hyper's own error answers (400, 414 and 431 with an empty body) rewritten into the API's
//! JSON errors on their way out to the client.

use crate::error::ApiError;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a connection closed after an error keeps reading what the client still sends.
pub(super) const LINGER: Duration = Duration::from_secs(2);

/// The socket hyper writes to, with hyper's own error answers (400, 414 and 431 with an empty
/// body, written when a request head does not parse) replaced by the API's JSON errors.
///
/// hyper writes such an answer as one head with `content-length: 0` and closes the connection;
/// the API's own error responses always have a body, so they never match. A head too large for
/// hyper's buffer is a 431 from hyper; it becomes a 414 when its request line never ended.
/// After a replaced answer, closing lingers for [`LINGER`], as the connection's own error
/// answers do.
pub(super) struct HyperErrors<T> {
    inner: T,
    /// The replacement being written, and how much of it is out.
    out: Vec<u8>,
    at: usize,
    /// Whether a line ended in what was read since hyper last wrote.
    line_ended: bool,
    /// Set once an answer was replaced: closing lingers until then.
    lingering: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The write side was shut down.
    shut: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> HyperErrors<T> {
    pub(super) fn new(inner: T) -> Self {
        Self {
            inner,
            out: Vec::new(),
            at: 0,
            line_ended: false,
            lingering: None,
            shut: false,
        }
    }

    /// Writes what is left of a replacement.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.at < self.out.len() {
            let written =
                std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.at..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.at += written;
        }
        Poll::Ready(Ok(()))
    }

    /// `buf` about to be written: replaced by a JSON error, or passed on (`None`).
    fn poll_write_checked(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Option<Poll<io::Result<usize>>> {
        let line_ended = std::mem::replace(&mut self.line_ended, false);
        let replacement = json_error_for(buf, line_ended)?;
        self.out = replacement;
        self.at = 0;
        self.lingering = Some(Box::pin(tokio::time::sleep(LINGER)));
        Some(match self.poll_drain(cx) {
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            // The rest goes out on the next write, flush or shutdown.
            _ => Poll::Ready(Ok(buf.len())),
        })
    }

    /// Reads and drops what the client still sends, until it closes or the time is up.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(deadline) = self.lingering.as_mut() else {
            return Poll::Ready(());
        };
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let mut ignored = [0u8; 4096];
        loop {
            let mut buf = ReadBuf::new(&mut ignored);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The JSON response standing in for hyper's own error answer `buf`, if it is one.
fn json_error_for(buf: &[u8], line_ended: bool) -> Option<Vec<u8>> {
    let error = match buf.get(..13)? {
        b"HTTP/1.1 400 " => ApiError::MalformedRequest,
        b"HTTP/1.1 414 " => ApiError::UriTooLong,
        b"HTTP/1.1 431 " if !line_ended => ApiError::UriTooLong,
        b"HTTP/1.1 431 " => ApiError::HeadersTooLarge,
        _ => return None,
    };
    let head_end = buf.windows(4).position(|end| end == b"\r\n\r\n")?;
    let empty = buf[..head_end]
        .split(|&byte| byte == b'\n')
        .any(|line| line.trim_ascii().eq_ignore_ascii_case(b"content-length: 0"));
    if head_end + 4 != buf.len() || !empty {
        return None;
    }
    Some(raw_response(&error))
}

/// An error as the bytes of a whole response that closes its connection.
fn raw_response(error: &ApiError) -> Vec<u8> {
    let status = error.status();
    let body = error.body();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\ndate: {}\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    )
    .into_bytes()
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for HyperErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.line_ended {
            // A line end split over two reads is missed: the answer is then 414, not 431.
            self.line_ended = buf.filled()[before..]
                .windows(2)
                .any(|pair| pair == b"\r\n");
        }
        polled
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HyperErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_drain(cx))?;
        if let Some(replaced) = self.poll_write_checked(cx, buf) {
            return replaced;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_drain(cx))?;
        // hyper's error answer is a head alone, so it comes as one slice.
        let mut filled = bufs.iter().filter(|slice| !slice.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next())
            && let Some(replaced) = self.poll_write_checked(cx, only)
        {
            return replaced;
        }
        self.line_ended = false;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        if !self.shut {
            std::task::ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
            self.shut = true;
        }
        std::task::ready!(self.poll_linger(cx));
        Poll::Ready(Ok(()))
    }
}
