// Package sign computes and checks the EIOTCLUB request signature.
//
// The algorithm, as the vendor documents it and as its PHP SDK implements it:
//
//  1. take every parameter except "sign", leaving out empty values
//     (nil, "", an empty slice);
//  2. sort by name in byte-wise ASCII order (upper case before lower case);
//  3. join as "k1=v1&k2=v2&..." and append "&secret=<secret>";
//  4. SHA-1 of that string (UTF-8), hex, upper case.
//
// Values are written in their plain text form: strings as they are, integers
// in decimal, floats in plain decimal notation (never an exponent), booleans
// as "true"/"false", and [encoding/json.Number] as its literal digits (so a
// body decoded with UseNumber verifies exactly as it was written). Any other
// type is an error wrapping [ErrUnsupportedValue] — never a guess.
//
// Parameter names must be non-empty and must not contain '=' or '&'
// ([ErrInvalidKey]); such a name would make the joined string ambiguous.
//
// Notifications the vendor pushes are signed the same way without "appkey":
// see [SignNotification] and [VerifyNotification].
//
// The secret is a [Secret], which never prints itself: fmt, slog, JSON and
// text marshalling all show "[REDACTED]". Only [Secret.Reveal] gives the
// value, and only this package should need it.
//
// All functions are safe for concurrent use.
package sign
