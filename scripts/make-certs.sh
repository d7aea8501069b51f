#!/usr/bin/env bash
# Make a throw-away CA plus a Redis server certificate (and a client
# certificate) for the docker-compose stack, so local Redis runs with TLS the
# way ElastiCache does.  Development only: never use these in production.
#
#   scripts/make-certs.sh            # writes deploy/compose/certs/ (skips if present)
#   scripts/make-certs.sh --force    # regenerate
#   scripts/make-certs.sh DIR        # write somewhere else (the tests do this)
#
# Output: ca.crt ca.key redis.crt redis.key client.crt client.key
# The server certificate is valid for DNS:redis (the compose service name),
# DNS:localhost and IP:127.0.0.1.
set -euo pipefail

force=0
out=""
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        -*) echo "make-certs.sh: unknown option $arg" >&2; exit 2 ;;
        *) out="$arg" ;;
    esac
done
if [[ -z "$out" ]]; then
    out="$(cd "$(dirname "$0")/.." && pwd)/deploy/compose/certs"
fi

command -v openssl >/dev/null || { echo "make-certs.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }

if [[ $force -eq 0 && -s "$out/ca.crt" && -s "$out/redis.crt" && -s "$out/redis.key" ]]; then
    echo "make-certs.sh: certificates already in $out (use --force to regenerate)"
    exit 0
fi

mkdir -p "$out"
days=825
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days "$days" \
    -subj "/O=collab dev/CN=collab dev CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null

# Leaf certificates carry SKI/AKI and an explicit EKU so that strict X.509
# verification (Python >= 3.13 sets VERIFY_X509_STRICT) accepts them too.
issue() { # name subject extensions
    local name="$1" subject="$2" ext="$3"
    openssl req -new -nodes -newkey rsa:2048 -sha256 -subj "$subject" \
        -keyout "$out/$name.key" -out "$tmp/$name.csr" 2>/dev/null
    printf '%s\n' "$ext" > "$tmp/$name.ext"
    openssl x509 -req -sha256 -days "$days" -in "$tmp/$name.csr" \
        -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -CAserial "$tmp/ca.srl" \
        -extfile "$tmp/$name.ext" -out "$out/$name.crt" 2>/dev/null
}

issue redis "/O=collab dev/CN=redis" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:redis,DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer"

issue client "/O=collab dev/CN=collab" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer"

# The redis image drops to uid 999 and the collab image runs as uid 10001, and
# both read these files through a bind mount: they must be world-readable.
# Acceptable for throw-away development keys only.
chmod 0644 "$out"/*.crt "$out"/redis.key "$out"/client.key
chmod 0600 "$out/ca.key"

openssl verify -CAfile "$out/ca.crt" "$out/redis.crt" "$out/client.crt" >/dev/null
echo "make-certs.sh: wrote CA, redis and client certificates to $out"
