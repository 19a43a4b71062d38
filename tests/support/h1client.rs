//! A small blocking HTTP/1.1 client over any stream, for keep-alive and streaming checks.

use std::io::{Read, Write};
use std::time::Instant;

use super::origin::find;

/// Largest response head [`H1Conn`] accepts.
const MAX_HEAD: usize = 64 * 1024;

/// One response: status, head (as text) and the de-chunked body.
#[derive(Debug, Clone)]
pub struct H1Response {
    /// The status code (0 when no status line could be parsed).
    pub status: u16,
    /// The whole head, status line included, without the final blank line.
    pub head: String,
    /// The body, chunked framing removed.
    pub body: Vec<u8>,
}

impl H1Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the whole response if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}):\n{}\n\n{}", self.head, self.text()))
    }
}

/// A connection with a read buffer, so several responses can be read in a row.
pub struct H1Conn<S: Read + Write> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: Read + Write> H1Conn<S> {
    /// Wraps an open stream (plain, TLS, or an intercepted tunnel).
    pub fn new(stream: S) -> H1Conn<S> {
        H1Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends `METHOD PATH` with `headers` and a `Content-Length` body, then reads the response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<H1Response> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        self.stream.write_all(req.as_bytes())?;
        self.stream.write_all(body)?;
        self.stream.flush()?;
        self.read_response(method == "HEAD")
    }

    /// Writes raw bytes (a head written by the caller, or body chunks).
    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads a response head; returns (status, head text).
    pub fn read_head(&mut self) -> std::io::Result<(u16, String)> {
        loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..at + 4).collect();
                let head = String::from_utf8_lossy(&head[..at]).into_owned();
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if (100..200).contains(&status) && status != 101 {
                    // An interim response (100 Continue): the real one follows.
                    continue;
                }
                return Ok((status, head));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid(format!(
                    "response head over {MAX_HEAD} bytes: {:?}",
                    String::from_utf8_lossy(&self.buf[..256])
                )));
            }
            self.fill()?;
        }
    }

    /// Reads one whole response (head and body).
    pub fn read_response(&mut self, head_request: bool) -> std::io::Result<H1Response> {
        let (status, head) = self.read_head()?;
        let mut response = H1Response {
            status,
            head,
            body: Vec::new(),
        };
        if head_request || status == 204 || status == 304 || status == 101 {
            return Ok(response);
        }
        if response
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            while let Some(chunk) = self.read_chunk()? {
                response.body.extend_from_slice(&chunk);
            }
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| invalid(format!("bad Content-Length in {}", response.head)))?;
            response.body = self.take(len)?;
        } else {
            // Delimited by close.
            response.body = std::mem::take(&mut self.buf);
            self.stream.read_to_end(&mut response.body)?;
        }
        Ok(response)
    }

    /// Reads the next chunk of a chunked body; `None` after the last chunk and trailers.
    pub fn read_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let line = self.take_line()?;
        let size = line
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let size = usize::from_str_radix(&size, 16)
            .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            while !self.take_line()?.is_empty() {}
            return Ok(None);
        }
        let chunk = self.take(size)?;
        if !self.take_line()?.is_empty() {
            return Err(invalid("chunk not followed by CRLF".into()));
        }
        Ok(Some(chunk))
    }

    /// Reads a chunked body chunk by chunk, calling `each` with the arrival time of each.
    pub fn read_chunks_timed(
        &mut self,
        mut each: impl FnMut(Instant, &[u8]),
    ) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(chunk) = self.read_chunk()? {
            each(Instant::now(), &chunk);
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The bytes already buffered, or else whatever one read of the stream returns
    /// (an error at EOF): for checking when bytes arrive, whatever the framing.
    pub fn read_raw(&mut self) -> std::io::Result<Vec<u8>> {
        if self.buf.is_empty() {
            self.fill()?;
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// The underlying stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed with {} unparsed bytes: {:?}",
                    self.buf.len(),
                    String::from_utf8_lossy(&self.buf)
                ),
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill()?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// One CRLF-terminated line without its CRLF.
    fn take_line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(at) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..at + 2).collect();
                return Ok(String::from_utf8_lossy(&line[..at]).into_owned());
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("line too long".into()));
            }
            self.fill()?;
        }
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}
