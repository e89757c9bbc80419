//! RSA key generation (the `genCA`/`genSignedCert`/`genSelfSignedCert`/`genPrivateKey`
//! keys), faster than AWS-LC's `RSA_generate_key_ex` while using AWS-LC's random numbers
//! and Miller-Rabin test:
//!
//! * candidates are sieved incrementally: one random odd start of `bits/2` bits (top two
//!   bits set, so `p·q` has exactly `bits` bits), its residues modulo the odd primes below
//!   2^16 computed once, then a window of following odd numbers sieved in one pass (the
//!   `p ≡ 1 (mod 65537)` candidates dropped too, so `e = 65537` is invertible), instead
//!   of a constant-time trial division per candidate;
//! * the survivors are Fermat-tested two at a time with AWS-LC's dual exponentiation
//!   (`BN_mod_exp_mont_consttime_x2`, AVX-512 IFMA where the CPU has it), which proves
//!   almost all of them composite at about half the cost of one Miller-Rabin round each;
//! * the few that pass get AWS-LC's `BN_primality_test` (Miller-Rabin with
//!   `BN_prime_checks_for_generation` rounds, the same as AWS-LC's own key generation);
//! * the two primes are searched by two threads at once (the first two primes found by
//!   either win), so a key costs about one prime search of wall time on two cores.
//!
//! The key is returned as PKCS#1 `RSAPrivateKey` DER (what Go's
//! `x509.MarshalPKCS1PrivateKey` writes) with `d = e⁻¹ mod lcm(p-1, q-1)` and the CRT
//! values, and is checked by AWS-LC (`KeyPair::from_der` validates it) before use.

use aws_lc_sys as ffi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::der;

/// Odd primes below 2^16.
fn small_primes() -> &'static [u32] {
    static P: OnceLock<Vec<u32>> = OnceLock::new();
    P.get_or_init(|| {
        const LIMIT: usize = 1 << 16;
        let mut composite = vec![false; LIMIT];
        let mut out = Vec::new();
        for i in 2..LIMIT {
            if composite[i] {
                continue;
            }
            if i > 2 {
                out.push(i as u32);
            }
            let mut j = i * i;
            while j < LIMIT {
                composite[j] = true;
                j += i;
            }
        }
        out
    })
}

/// An owned AWS-LC `BIGNUM`.
struct Bn(*mut ffi::BIGNUM);

impl Bn {
    fn new() -> Result<Bn, String> {
        // SAFETY: BN_new has no preconditions; null is handled.
        let p = unsafe { ffi::BN_new() };
        if p.is_null() {
            Err("out of memory".into())
        } else {
            Ok(Bn(p))
        }
    }
    fn bytes(&self) -> Vec<u8> {
        // SAFETY: self.0 is a valid BIGNUM; the buffer has BN_num_bytes bytes.
        unsafe {
            let mut v = vec![0u8; ffi::BN_num_bytes(self.0) as usize];
            let n = ffi::BN_bn2bin(self.0, v.as_mut_ptr());
            v.truncate(n);
            v
        }
    }
}

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: owned pointer, freed once (clears the memory: primes are secrets).
        unsafe { ffi::BN_clear_free(self.0) }
    }
}

// SAFETY: a BIGNUM is plain heap memory owned by this handle (no thread affinity).
unsafe impl Send for Bn {}

/// An owned `BN_CTX`.
struct Ctx(*mut ffi::BN_CTX);

impl Ctx {
    fn new() -> Result<Ctx, String> {
        // SAFETY: no preconditions; null is handled.
        let p = unsafe { ffi::BN_CTX_new() };
        if p.is_null() {
            Err("out of memory".into())
        } else {
            Ok(Ctx(p))
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: owned pointer, freed once.
        unsafe { ffi::BN_CTX_free(self.0) }
    }
}

const E: u64 = 65537;
/// Odd numbers sieved after each random start.
const WINDOW: usize = 4096;

/// A Montgomery context (owned).
struct Mont(*mut ffi::BN_MONT_CTX);

impl Drop for Mont {
    fn drop(&mut self) {
        // SAFETY: owned pointer (or null, which BN_MONT_CTX_free accepts), freed once.
        unsafe { ffi::BN_MONT_CTX_free(self.0) }
    }
}

/// Fermat tests `(c-2)^(c-1) ≡ 1 (mod c)` of two candidates at once (AWS-LC's dual
/// exponentiation: AVX-512 IFMA when the CPU has it, two exponentiations otherwise).
/// `false` proves a candidate composite; `true` only means "worth a Miller-Rabin test".
fn fermat_x2(ctx: &Ctx, c1: &Bn, c2: &Bn) -> Result<(bool, bool), String> {
    let fail = || "error generating rsa key".to_string();
    let (a1, e1, r1) = (Bn::new()?, Bn::new()?, Bn::new()?);
    let (a2, e2, r2) = (Bn::new()?, Bn::new()?, Bn::new()?);
    // SAFETY: valid BIGNUMs, BN_CTX and Montgomery contexts owned here.
    unsafe {
        let m1 = Mont(ffi::BN_MONT_CTX_new_for_modulus(c1.0, ctx.0));
        let m2 = Mont(ffi::BN_MONT_CTX_new_for_modulus(c2.0, ctx.0));
        if m1.0.is_null() || m2.0.is_null() {
            return Err(fail());
        }
        for (a, e, c) in [(&a1, &e1, c1), (&a2, &e2, c2)] {
            if ffi::BN_copy(a.0, c.0).is_null()
                || ffi::BN_sub_word(a.0, 2) != 1
                || ffi::BN_copy(e.0, c.0).is_null()
                || ffi::BN_sub_word(e.0, 1) != 1
            {
                return Err(fail());
            }
        }
        if ffi::BN_mod_exp_mont_consttime_x2(
            r1.0, a1.0, e1.0, c1.0, m1.0, r2.0, a2.0, e2.0, c2.0, m2.0, ctx.0,
        ) != 1
        {
            return Err(fail());
        }
        Ok((ffi::BN_is_one(r1.0) == 1, ffi::BN_is_one(r2.0) == 1))
    }
}

/// AWS-LC's Miller-Rabin test with the rounds it uses for key generation.
fn miller_rabin(ctx: &Ctx, c: &Bn) -> Result<bool, String> {
    let mut is_prime = 0;
    // SAFETY: valid BIGNUM and BN_CTX.
    let rc = unsafe {
        ffi::BN_primality_test(
            &mut is_prime,
            c.0,
            ffi::BN_prime_checks_for_generation,
            ctx.0,
            0,
            std::ptr::null_mut(),
        )
    };
    if rc != 1 {
        return Err("error generating rsa key".into());
    }
    Ok(is_prime == 1)
}

/// Searches one random prime of `bits` bits (top two bits set, `p mod e ≠ 1`); gives up
/// with `Ok(None)` when `stop` is set.
fn random_prime(bits: i32, stop: &AtomicBool) -> Result<Option<Bn>, String> {
    let fail = || "error generating rsa key".to_string();
    let ctx = Ctx::new()?;
    let base = Bn::new()?;
    let primes = small_primes();
    let mut sieve = vec![false; WINDOW];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        // SAFETY: valid BIGNUMs/BN_CTX owned above; AWS-LC functions on them.
        let re = unsafe {
            if ffi::BN_rand(base.0, bits, ffi::BN_RAND_TOP_TWO, ffi::BN_RAND_BOTTOM_ODD) != 1 {
                return Err(fail());
            }
            sieve.iter_mut().for_each(|s| *s = false);
            for &p in primes {
                let r = ffi::BN_mod_word(base.0, p as u64);
                // the offsets k with base + 2k ≡ 0 (mod p): k ≡ -r·2⁻¹ (mod p)
                let p64 = p as u64;
                let inv2 = p64.div_ceil(2);
                let mut k = (((p64 - r) % p64) * inv2 % p64) as usize;
                while k < WINDOW {
                    sieve[k] = true;
                    k += p as usize;
                }
            }
            ffi::BN_mod_word(base.0, E)
        };
        let mut pending: Vec<Bn> = Vec::with_capacity(2);
        for (k, composite) in sieve.iter().enumerate() {
            if *composite || (re + 2 * k as u64) % E == 1 {
                continue;
            }
            let cand = Bn::new()?;
            // SAFETY: valid BIGNUMs.
            unsafe {
                if ffi::BN_copy(cand.0, base.0).is_null()
                    || ffi::BN_add_word(cand.0, 2 * k as u64) != 1
                {
                    return Err(fail());
                }
                if ffi::BN_num_bits(cand.0) != bits as u32 {
                    break;
                }
            }
            pending.push(cand);
            if pending.len() < 2 {
                continue;
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let (c2, c1) = (
                pending.pop().ok_or_else(fail)?,
                pending.pop().ok_or_else(fail)?,
            );
            let (f1, f2) = fermat_x2(&ctx, &c1, &c2)?;
            for (ok, c) in [(f1, c1), (f2, c2)] {
                if ok && miller_rabin(&ctx, &c)? {
                    return Ok(Some(c));
                }
            }
        }
        if let Some(c) = pending.pop() {
            if miller_rabin(&ctx, &c)? {
                return Ok(Some(c));
            }
        }
    }
}

/// Two distinct primes of `bits` bits, searched by this thread and a helper at once.
fn two_primes(bits: i32) -> Result<(Bn, Bn), String> {
    let found: Mutex<Vec<Bn>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let err: Mutex<Option<String>> = Mutex::new(None);
    let work = || loop {
        match random_prime(bits, &stop) {
            Ok(Some(p)) => {
                let mut f = found.lock().unwrap_or_else(|e| e.into_inner());
                // SAFETY: both are valid BIGNUMs.
                if f.iter().any(|q| unsafe { ffi::BN_cmp(q.0, p.0) } == 0) {
                    continue;
                }
                f.push(p);
                if f.len() >= 2 {
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                *err.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                stop.store(true, Ordering::Relaxed);
                return;
            }
        }
    };
    let parallel = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    std::thread::scope(|s| {
        if parallel {
            // a helper that cannot start only means a slower search
            let _ = std::thread::Builder::new().spawn_scoped(s, work);
        }
        work();
    });
    if let Some(e) = err.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut f = found.into_inner().unwrap_or_else(|e| e.into_inner());
    if f.len() < 2 {
        return Err("error generating rsa key".into());
    }
    let q = f.pop().unwrap_or_else(|| unreachable!());
    let p = f.pop().unwrap_or_else(|| unreachable!());
    Ok((p, q))
}

/// A `bits`-bit RSA key (e = 65537) as PKCS#1 `RSAPrivateKey` DER.
pub(crate) fn generate_pkcs1(bits: usize) -> Result<Vec<u8>, String> {
    let fail = || "error generating rsa key".to_string();
    let (p, q) = two_primes((bits / 2) as i32)?;
    let ctx = Ctx::new()?;
    let (n, e, d) = (Bn::new()?, Bn::new()?, Bn::new()?);
    let (p1, q1, phi, g, lambda, rem) = (
        Bn::new()?,
        Bn::new()?,
        Bn::new()?,
        Bn::new()?,
        Bn::new()?,
        Bn::new()?,
    );
    let (dp, dq, qinv) = (Bn::new()?, Bn::new()?, Bn::new()?);
    // SAFETY: every pointer is a valid BIGNUM/BN_CTX owned above.
    unsafe {
        let ok = ffi::BN_mul(n.0, p.0, q.0, ctx.0) == 1
            && ffi::BN_num_bits(n.0) == bits as u32
            && ffi::BN_set_word(e.0, E) == 1
            && !ffi::BN_copy(p1.0, p.0).is_null()
            && ffi::BN_sub_word(p1.0, 1) == 1
            && !ffi::BN_copy(q1.0, q.0).is_null()
            && ffi::BN_sub_word(q1.0, 1) == 1
            && ffi::BN_mul(phi.0, p1.0, q1.0, ctx.0) == 1
            && ffi::BN_gcd(g.0, p1.0, q1.0, ctx.0) == 1
            && ffi::BN_div(lambda.0, rem.0, phi.0, g.0, ctx.0) == 1
            && !ffi::BN_mod_inverse(d.0, e.0, lambda.0, ctx.0).is_null()
            && ffi::BN_div(std::ptr::null_mut(), dp.0, d.0, p1.0, ctx.0) == 1
            && ffi::BN_div(std::ptr::null_mut(), dq.0, d.0, q1.0, ctx.0) == 1
            && !ffi::BN_mod_inverse(qinv.0, q.0, p.0, ctx.0).is_null();
        if !ok {
            return Err(fail());
        }
    }
    let ints: Vec<Vec<u8>> = [&n, &e, &d, &p, &q, &dp, &dq, &qinv]
        .iter()
        .map(|b| der::uint(&b.bytes()))
        .collect();
    let zero = der::small_int(0);
    let mut refs: Vec<&[u8]> = vec![&zero];
    refs.extend(ints.iter().map(|v| v.as_slice()));
    let pkcs1 = der::seq(&refs);
    aws_lc_rs::rsa::KeyPair::from_der(&pkcs1).map_err(|_| fail())?;
    Ok(pkcs1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{self as sig, KeyPair as _};

    #[test]
    fn generated_keys_sign_and_verify() {
        for bits in [2048usize, 3072] {
            let der = generate_pkcs1(bits).unwrap();
            let kp = aws_lc_rs::rsa::KeyPair::from_der(&der).unwrap();
            assert_eq!(kp.public_modulus_len() * 8, bits);
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let mut out = vec![0u8; kp.public_modulus_len()];
            kp.sign(&sig::RSA_PKCS1_SHA256, &rng, b"msg", &mut out)
                .unwrap();
            let pk = sig::UnparsedPublicKey::new(
                &sig::RSA_PKCS1_2048_8192_SHA256,
                kp.public_key().as_ref(),
            );
            pk.verify(b"msg", &out).unwrap();
        }
    }

    #[test]
    fn keys_differ() {
        assert_ne!(generate_pkcs1(2048).unwrap(), generate_pkcs1(2048).unwrap());
    }
}
