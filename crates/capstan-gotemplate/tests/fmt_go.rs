//! Go `fmt.Sprintf` rules beyond the common verbs, each checked against Helm v4's output.

use capstan_gotemplate::fmt::sprintf;
use capstan_gotemplate::Value;

fn i(n: i64) -> Value {
    Value::Int(n)
}

#[test]
fn sprintf_explicit_argument_indexes() {
    // `%[n]verb` picks argument n (1-based); later verbs continue after it; out-of-order
    // access turns off the EXTRA check.
    assert_eq!(sprintf("%[2]d %[1]d", &[i(1), i(2)]), "2 1");
    assert_eq!(sprintf("%[2]d %d", &[i(1), i(2), i(3)]), "2 3");
    assert_eq!(sprintf("%[1]d %[1]v", &[i(7), i(8)]), "7 7");
    assert_eq!(sprintf("%[3]d", &[i(1)]), "%!d(BADINDEX)");
    assert_eq!(sprintf("%[0]d", &[i(1)]), "%!d(BADINDEX)");
    assert_eq!(sprintf("%[x]d", &[i(1)]), "%!d(BADINDEX)");
    assert_eq!(sprintf("%[1]*d|", &[i(4), i(2)]), "   2|");
    assert_eq!(
        sprintf("%.[2]*[1]f", &[Value::Float(1.23456), i(2)]),
        "1.23"
    );
}

#[test]
fn sprintf_hex_and_binary_floats() {
    // strconv's 'x' (shortest hexadecimal mantissa, two exponent digits) and 'b'.
    assert_eq!(sprintf("%x", &[Value::Float(255.0)]), "0x1.fep+07");
    assert_eq!(sprintf("%X", &[Value::Float(-0.5)]), "-0X1P-01");
    assert_eq!(sprintf("%x", &[Value::Float(0.0)]), "0x0p+00");
    assert_eq!(sprintf("%.2x", &[Value::Float(1.0 / 3.0)]), "0x1.55p-02");
    assert_eq!(sprintf("%b", &[Value::Float(1.0)]), "4503599627370496p-52");
}
