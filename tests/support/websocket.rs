//! A minimal RFC 6455 WebSocket codec: the accept key, frames, and a blocking client.
//!
//! Only what the interception tests need: unfragmented frames, client frames masked,
//! server frames not, payloads up to `MAX_PAYLOAD`. The async server side lives in
//! `h2origin` and uses [`encode_frame`] and [`decode_header`].

use std::io::{Read, Write};

use base64::Engine as _;

/// The GUID RFC 6455 appends to the client's key before hashing.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest frame payload either side accepts (a guard against a garbled length).
pub const MAX_PAYLOAD: u64 = 16 * 1024 * 1024;

/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame opcode.
pub const OP_BINARY: u8 = 0x2;
/// Close frame opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(sha1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// One final (FIN set) frame; masked with `mask` when given, as a client must.
pub fn encode_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | (opcode & 0x0F));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// The parsed fixed part of a frame header.
#[derive(Debug, Clone, Copy)]
pub struct FrameHeader {
    /// FIN bit.
    pub fin: bool,
    /// The opcode.
    pub opcode: u8,
    /// Whether a masking key follows the length.
    pub masked: bool,
    /// The 7-bit length field: the length itself, or 126 / 127 for a 2- / 8-byte length.
    pub len7: u8,
}

/// Parses the first two bytes of a frame.
pub fn decode_header(first_two: [u8; 2]) -> FrameHeader {
    FrameHeader {
        fin: first_two[0] & 0x80 != 0,
        opcode: first_two[0] & 0x0F,
        masked: first_two[1] & 0x80 != 0,
        len7: first_two[1] & 0x7F,
    }
}

/// How many extended-length bytes follow the header for `len7` (0, 2 or 8).
pub fn extended_len_bytes(len7: u8) -> usize {
    match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    }
}

/// The payload length from `len7` and its extended bytes.
pub fn payload_len(len7: u8, extended: &[u8]) -> u64 {
    match len7 {
        126 | 127 => extended
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        n => u64::from(n),
    }
}

/// Reads one whole frame from a blocking stream: (opcode, unmasked payload).
pub fn read_frame<S: Read>(stream: &mut S) -> std::io::Result<(u8, Vec<u8>)> {
    let mut two = [0u8; 2];
    stream.read_exact(&mut two)?;
    let header = decode_header(two);
    let mut extended = vec![0u8; extended_len_bytes(header.len7)];
    stream.read_exact(&mut extended)?;
    let len = payload_len(header.len7, &extended);
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {MAX_PAYLOAD}"),
        ));
    }
    let mut key = [0u8; 4];
    if header.masked {
        stream.read_exact(&mut key)?;
    }
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload)?;
    if header.masked {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= key[i % 4]);
    }
    Ok((header.opcode, payload))
}

/// A blocking WebSocket client over an already-open stream (TCP, TLS, a proxy tunnel).
pub struct WsClient<S: Read + Write> {
    stream: S,
    next_mask: u32,
}

impl<S: Read + Write> WsClient<S> {
    /// Sends the upgrade request for `path` on `host` with `extra` headers and reads the
    /// response head byte by byte (so no frame bytes are swallowed).
    ///
    /// Returns the client and the response head on `101` with the right accept key;
    /// otherwise the head (plus whatever body arrived within the read timeout) as the error.
    pub fn handshake(
        mut stream: S,
        host: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<(WsClient<S>, String), String> {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (name, value) in extra {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        stream
            .write_all(req.as_bytes())
            .and_then(|()| stream.flush())
            .map_err(|e| format!("writing the upgrade request: {e}"))?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                Ok(_) => return Err(format!("EOF in the response head: {:?}", lossy(&head))),
                Err(e) => {
                    return Err(format!(
                        "reading the response head: {e}: {:?}",
                        lossy(&head)
                    ))
                }
            }
        }
        let head = lossy(&head);
        let status_ok = head.starts_with("HTTP/1.1 101");
        let accept = head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("sec-websocket-accept")
                .then(|| v.trim().to_string())
        });
        if !status_ok || accept.as_deref() != Some(accept_key(key).as_str()) {
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            return Err(format!("{head}{}", lossy(&rest)));
        }
        Ok((
            WsClient {
                stream,
                next_mask: 0x1234_5678,
            },
            head,
        ))
    }

    /// Sends one masked frame.
    pub fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        // Any key is valid; vary it so masking bugs cannot cancel out.
        self.next_mask = self
            .next_mask
            .wrapping_mul(1_103_515_245)
            .wrapping_add(12_345);
        let frame = encode_frame(opcode, payload, Some(self.next_mask.to_be_bytes()));
        self.stream.write_all(&frame)?;
        self.stream.flush()
    }

    /// Reads one frame: (opcode, payload).
    pub fn recv(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        read_frame(&mut self.stream)
    }

    /// The underlying stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
