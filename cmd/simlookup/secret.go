package main

import (
	"strings"

	"github.com/simlookup/simlookup/sign"
)

// secretFlags: the vendor secret comes from SIMLOOKUP_SECRET or a file, never
// from a flag value (which would show in ps).
type secretFlags struct {
	SecretFile string `name:"secret-file" type:"path" placeholder:"FILE" group:"Vendor secret" help:"File holding the vendor secret (trailing white space trimmed); or set SIMLOOKUP_SECRET."`
}

// load returns the secret. Both sources set, an unreadable or empty file, or
// (when required) no secret at all are usage errors.
func (f *secretFlags) load(getenv func(string) string, required bool) (sign.Secret, error) {
	env := strings.TrimRight(getenv(envSecret), "\r\n")
	switch {
	case f.SecretFile != "" && env != "":
		return sign.Secret{}, usagef("%s and %s are both set: give the vendor secret one way", envSecret, flagRef("secret-file"))
	case f.SecretFile != "":
		s, err := sign.ReadSecretFile(f.SecretFile)
		if err != nil {
			return sign.Secret{}, usagef("%s: %v", flagRef("secret-file"), err)
		}
		return s, nil
	case env != "":
		return sign.NewSecret(env), nil
	case required:
		return sign.Secret{}, usagef("the vendor secret is required: set %s or %s to a file holding it", envSecret, flagRef("secret-file"))
	}
	return sign.Secret{}, nil
}

// maskAppKey shows only the last four characters of an appkey.
func maskAppKey(k string) string {
	if len(k) <= 4 {
		return strings.Repeat("*", len(k))
	}
	return strings.Repeat("*", len(k)-4) + k[len(k)-4:]
}
