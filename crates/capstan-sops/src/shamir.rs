//! Shamir's secret sharing over GF(2^8) as SOPS uses it for several key groups (its
//! `shamir` package, from HashiCorp Vault): each share is the secret's bytes evaluated on
//! random polynomials at a non-zero x, stored as `{y1, .., yN, x}`; the field is AES's
//! (reduction polynomial x^8 + x^4 + x^3 + x + 1); the secret is the polynomials' value at
//! x = 0, found by Lagrange interpolation.

/// Multiplication in GF(2^8) with AES's reduction polynomial (constant time in its
/// operands' values).
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        p ^= a & (0u8.wrapping_sub(b & 1));
        let hi = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & hi);
        b >>= 1;
    }
    p
}

/// The multiplicative inverse (a^254); `a` is never 0 here.
fn inv(a: u8) -> u8 {
    let mut r = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    r
}

/// Why shares do not combine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CombineError {
    TooFew,
    Lengths,
    ZeroX,
    Duplicate,
}

impl std::fmt::Display for CombineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CombineError::TooFew => "fewer than two key group parts",
            CombineError::Lengths => "key group parts differ in length",
            CombineError::ZeroX => "a key group part has x coordinate 0",
            CombineError::Duplicate => "two key group parts have the same x coordinate",
        })
    }
}

/// Combine shares (`{y1, .., yN, x}` each) into the secret.
pub fn combine(parts: &[Vec<u8>]) -> Result<Vec<u8>, CombineError> {
    if parts.len() < 2 {
        return Err(CombineError::TooFew);
    }
    let len = parts[0].len();
    if len < 2 || parts.iter().any(|p| p.len() != len) {
        return Err(CombineError::Lengths);
    }
    let xs: Vec<u8> = parts.iter().map(|p| p[len - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if *x == 0 {
            return Err(CombineError::ZeroX);
        }
        if xs[..i].contains(x) {
            return Err(CombineError::Duplicate);
        }
    }
    // Lagrange basis values at 0: l_i = prod_{j != i} x_j / (x_i + x_j).
    let basis: Vec<u8> = (0..xs.len())
        .map(|i| {
            (0..xs.len())
                .filter(|&j| j != i)
                .fold(1u8, |acc, j| mul(acc, mul(xs[j], inv(xs[i] ^ xs[j]))))
        })
        .collect();
    Ok((0..len - 1)
        .map(|idx| {
            parts
                .iter()
                .zip(&basis)
                .fold(0u8, |acc, (p, l)| acc ^ mul(p[idx], *l))
        })
        .collect())
}

/// Split `secret` into `parts` shares, `threshold` of which recover it (x coordinates
/// 1..=parts; for fixtures and tests).
pub fn split(
    secret: &[u8],
    parts: u8,
    threshold: u8,
    random: &mut dyn FnMut() -> u8,
) -> Vec<Vec<u8>> {
    let coeffs: Vec<Vec<u8>> = secret
        .iter()
        .map(|s| {
            let mut c = vec![*s];
            c.extend((1..threshold).map(|_| random()));
            c
        })
        .collect();
    (1..=parts)
        .map(|x| {
            let mut share: Vec<u8> = coeffs
                .iter()
                .map(|c| c.iter().rev().fold(0u8, |acc, k| mul(acc, x) ^ k))
                .collect();
            share.push(x);
            share
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AES's field: 0x53 * 0xCA = 1 (FIPS 197's inverse example), 0x57 * 0x83 = 0xC1.
    #[test]
    fn gf256_is_the_aes_field() {
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x53, 0xca), 0x01);
        assert_eq!(inv(0x53), 0xca);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1);
        }
    }

    /// Any `threshold` of the shares recover the secret; fewer give something else.
    #[test]
    fn threshold_shares_recover_the_secret() {
        let secret: Vec<u8> = (0..32).map(|i| i * 7 + 3).collect();
        let mut n = 17u8;
        let mut rnd = || {
            n = n.wrapping_mul(31).wrapping_add(11);
            n
        };
        let shares = split(&secret, 3, 2, &mut rnd);
        for pair in [[0, 1], [0, 2], [1, 2]] {
            let got = combine(&[shares[pair[0]].clone(), shares[pair[1]].clone()]).unwrap();
            assert_eq!(got, secret);
        }
        assert_eq!(combine(&shares).unwrap(), secret);
        let shares = split(&secret, 3, 3, &mut rnd);
        assert_ne!(combine(&shares[..2]).unwrap(), secret);
        assert_eq!(combine(&shares[..1]), Err(CombineError::TooFew));
        assert_eq!(
            combine(&[shares[0].clone(), shares[0].clone()]),
            Err(CombineError::Duplicate)
        );
    }
}
