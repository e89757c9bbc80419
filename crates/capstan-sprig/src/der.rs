//! A minimal DER writer and reader, enough to build X.509 certificates and keys shaped
//! exactly like Go's `crypto/x509` and to read back the ones Sprig's functions accept.

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const OID: u8 = 0x06;
pub(crate) const BOOLEAN: u8 = 0x01;

/// A TLV with `tag` and `content`.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = (n as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A constructed TLV holding the concatenation of `parts`.
pub(crate) fn cons(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// A SEQUENCE of `parts`.
pub(crate) fn seq(parts: &[&[u8]]) -> Vec<u8> {
    cons(SEQUENCE, parts)
}

/// A non-negative INTEGER from its big-endian magnitude (minimal encoding).
pub(crate) fn uint(be: &[u8]) -> Vec<u8> {
    let skip = be.iter().take_while(|b| **b == 0).count();
    let mag = &be[skip..];
    let mut c = Vec::with_capacity(mag.len() + 1);
    if mag.is_empty() || mag[0] & 0x80 != 0 {
        c.push(0);
    }
    c.extend_from_slice(mag);
    tlv(INTEGER, &c)
}

/// A small INTEGER.
pub(crate) fn small_int(i: u64) -> Vec<u8> {
    uint(&i.to_be_bytes())
}

/// An OBJECT IDENTIFIER from its arcs.
pub(crate) fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut c = Vec::new();
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        c.extend_from_slice(&tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for &a in &arcs[2..] {
        push(a);
    }
    tlv(OID, &c)
}

/// A BIT STRING of whole bytes.
pub(crate) fn bit_string(b: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(b.len() + 1);
    c.push(0);
    c.extend_from_slice(b);
    tlv(BIT_STRING, &c)
}

/// An OCTET STRING.
pub(crate) fn octets(b: &[u8]) -> Vec<u8> {
    tlv(OCTET_STRING, b)
}

/// One element read by [`Reader`].
#[derive(Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    /// The whole encoding (tag, length and content).
    pub raw: &'a [u8],
}

/// Reads consecutive TLVs.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// The next element, or `None` at the end or on malformed input.
    pub(crate) fn next(&mut self) -> Option<Tlv<'a>> {
        let d = self.data;
        if d.len() < 2 {
            return None;
        }
        let tag = d[0];
        let (len, hdr) = if d[1] < 0x80 {
            (d[1] as usize, 2)
        } else {
            let n = (d[1] & 0x7f) as usize;
            if n == 0 || n > 4 || d.len() < 2 + n {
                return None;
            }
            let mut l = 0usize;
            for b in &d[2..2 + n] {
                l = (l << 8) | *b as usize;
            }
            (l, 2 + n)
        };
        if d.len() < hdr + len {
            return None;
        }
        self.data = &d[hdr + len..];
        Some(Tlv {
            tag,
            content: &d[hdr..hdr + len],
            raw: &d[..hdr + len],
        })
    }
    /// The next element, which must have `tag`.
    pub(crate) fn expect(&mut self, tag: u8) -> Option<Tlv<'a>> {
        let t = self.next()?;
        (t.tag == tag).then_some(t)
    }
}

/// The content of an INTEGER as an unsigned big-endian magnitude (leading zero stripped).
pub(crate) fn int_magnitude(content: &[u8]) -> &[u8] {
    let skip = content.iter().take_while(|b| **b == 0).count();
    &content[skip..]
}
