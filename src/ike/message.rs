//! Encrypted IKE messages: an SK payload (RFC 7296 §3.14) with AES-GCM per RFC 5282.
//! The AAD is everything before the IV (the IKE header and the SK payload's generic
//! header); the plaintext is the inner payload chain plus a pad-length byte (GCM needs
//! no padding, so it is zero on send and honoured on receive).

use super::crypto::{SkCipher, SK_ICV_LEN, SK_IV_LEN};
use crate::wire::ike::{
    emit_chain, parse_chain, payload_type, Header, Packet, Payload, HEADER_LEN, PAYLOAD_HEADER_LEN,
};
use crate::wire::Error;

/// Builds header | SK(inner) with `header.next_payload` and `length` filled in.
pub fn seal(
    mut header: Header,
    inner: &[Payload],
    cipher: &SkCipher,
    iv: u64,
) -> Result<Vec<u8>, Error> {
    let mut pt = Vec::new();
    let first = emit_chain(inner, &mut pt)?;
    pt.push(0); // pad length
    let sk_len = PAYLOAD_HEADER_LEN + SK_IV_LEN + pt.len() + SK_ICV_LEN;
    let total = HEADER_LEN + sk_len;
    header.next_payload = payload_type::SK;
    header.length = u32::try_from(total).map_err(|_| Error::Malformed)?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&[first, 0]);
    out.extend_from_slice(
        &u16::try_from(sk_len)
            .map_err(|_| Error::Malformed)?
            .to_be_bytes(),
    );
    let iv = iv.to_be_bytes();
    out.extend_from_slice(&iv);
    let aad_end = HEADER_LEN + PAYLOAD_HEADER_LEN;
    out.extend_from_slice(&pt);
    let (aad, body) = out.split_at_mut(aad_end + SK_IV_LEN);
    let tag = cipher
        .seal(&iv, &aad[..aad_end], body)
        .map_err(|_| Error::Malformed)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Why an encrypted message could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The outer message is malformed or has no SK payload.
    Format(Error),
    /// The ICV did not verify.
    Integrity,
    /// The decrypted chain is malformed.
    Inner(Error),
}

/// Verifies and decrypts the SK payload of a whole message; returns the inner payloads.
pub fn open(msg: &[u8], cipher: &SkCipher) -> Result<Vec<Payload>, OpenError> {
    let p = Packet::new_checked(msg).map_err(OpenError::Format)?;
    let h = Header::parse(&p).map_err(OpenError::Format)?;
    if h.length as usize != msg.len() {
        return Err(OpenError::Format(Error::Malformed));
    }
    // Find the SK payload's offset by walking the outer chain.
    let mut offset = HEADER_LEN;
    let mut sk = None;
    for raw in p.payloads() {
        let raw = raw.map_err(OpenError::Format)?;
        if raw.kind == payload_type::SK {
            sk = Some((offset, raw.next, raw.body.len()));
        }
        offset += PAYLOAD_HEADER_LEN + raw.body.len();
    }
    let (sk_at, first, body_len) = sk.ok_or(OpenError::Format(Error::Malformed))?;
    if body_len < SK_IV_LEN + 1 + SK_ICV_LEN {
        return Err(OpenError::Format(Error::Truncated));
    }
    let aad_end = sk_at + PAYLOAD_HEADER_LEN;
    let mut iv = [0u8; SK_IV_LEN];
    iv.copy_from_slice(&msg[aad_end..aad_end + SK_IV_LEN]);
    let mut body = msg[aad_end + SK_IV_LEN..aad_end + body_len].to_vec();
    let n = cipher
        .open(&iv, &msg[..aad_end], &mut body)
        .map_err(|_| OpenError::Integrity)?;
    let pt = &body[..n];
    let (&pad, rest) = pt.split_last().ok_or(OpenError::Inner(Error::Truncated))?;
    let inner = rest
        .get(..rest.len().wrapping_sub(pad as usize))
        .filter(|_| pad as usize <= rest.len())
        .ok_or(OpenError::Inner(Error::Malformed))?;
    parse_chain(first, inner).map_err(OpenError::Inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::SK_E_LEN;
    use crate::wire::ike::{exchange, flags, Notify};

    fn header() -> Header {
        Header {
            spi_i: 1,
            spi_r: 2,
            next_payload: 0,
            exchange: exchange::INFORMATIONAL,
            flags: flags::INITIATOR,
            message_id: 7,
            length: 0,
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let c = SkCipher::new(&[3u8; SK_E_LEN]).unwrap();
        let inner = vec![
            Payload::Notify(Notify::new(16384, vec![])),
            Payload::Nonce(vec![9; 32]),
        ];
        let msg = seal(header(), &inner, &c, 5).unwrap();
        assert_eq!(open(&msg, &c).unwrap(), inner);
        // An empty INFORMATIONAL (DPD) works too.
        let dpd = seal(header(), &[], &c, 6).unwrap();
        assert_eq!(open(&dpd, &c).unwrap(), vec![]);
        // Any flipped bit, in the header (AAD) or in the ciphertext, is rejected.
        for i in 0..msg.len() {
            let mut m = msg.clone();
            m[i] ^= 0x10;
            assert!(open(&m, &c).is_err(), "byte {i}");
        }
        let other = SkCipher::new(&[4u8; SK_E_LEN]).unwrap();
        assert_eq!(open(&msg, &other), Err(OpenError::Integrity));
        for n in 0..msg.len() {
            assert!(open(&msg[..n], &c).is_err());
        }
    }
}
