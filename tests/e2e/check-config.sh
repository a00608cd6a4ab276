#!/bin/bash
# check-config.sh - end-to-end tests of `postgate check-config` and the CLI.
#
# Pins every bad-configuration case of issue 3 to its exact FILE:LINE:
# message on standard error and exit status 78 (EX_CONFIG); a good file to
# exit 0 and its non-default settings; --help, --version and usage errors
# (64, EX_USAGE); and docs/postgate.conf.5 to `postgate config-manpage`.
# Issue 12: a FIFO as the configuration, key or password file is refused at
# once (each such command runs under timeout: a hang fails, it does not
# stall the suite), an empty file, errors without knock-on errors before
# them, and the warnings about state and keys that others may read.
#
# Environment: POSTGATE (the built postgate), srcdir (the source tree top).

set -u

POSTGATE=${POSTGATE:-./postgate}
srcdir=${srcdir:-.}
passed=0
failed=0

work=$(mktemp -d "${TMPDIR:-/tmp}/pg-check-config.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

pass() { passed=$((passed + 1)); echo "ok - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1"; }

# run NAME: run the rest of the arguments, keeping stdout, stderr, status
run() {
	"$@" >"$work/out" 2>"$work/err"
	rc=$?
}

# expect NAME RC STDOUT STDERR: the last run gave exactly these
expect() {
	local name=$1 want_rc=$2 want_out=$3 want_err=$4
	local got_out got_err
	got_out=$(cat "$work/out")
	got_err=$(cat "$work/err")
	if [ "$rc" = "$want_rc" ] && [ "$got_out" = "$want_out" ] &&
	    [ "$got_err" = "$want_err" ]; then
		pass "$name"
	else
		fail "$name"
		echo "   exit status: want $want_rc, got $rc"
		diff <(printf '%s\n' "$want_out") <(printf '%s\n' "$got_out") |
		    sed 's/^/   stdout: /'
		diff <(printf '%s\n' "$want_err") <(printf '%s\n' "$got_err") |
		    sed 's/^/   stderr: /'
	fi
}

# Fixtures: two drop directories and key files, made here, not by postgate-po.
# A key file loses one trailing newline: 48 random bytes stay long enough.
# Private, as they should be: check-config warns about others (below).
mkdir -p "$work/po/hq" "$work/po/sales"
chmod 700 "$work/po/hq" "$work/po/sales"
head -c 48 /dev/urandom >"$work/hq.key"
head -c 48 /dev/urandom >"$work/sales.key"
printf '%s' 0123456789abcdef0123456789abcde >"$work/short.key"
chmod 600 "$work"/*.key
mkfifo "$work/fifo"
# A command that may hang on a FIFO: killed after 10 s (exit 124 then).
T="timeout -k 2 10"

SITE='[site]
name = HQ
domains = example.com
gateway_po = CORP/GW'

# config NAME: write standard input to $work/NAME.conf, set $conf
config() {
	conf="$work/$1.conf"
	cat >"$conf"
}

# check NAME LINE MESSAGE: check-config refuses $conf with exactly one line
check_bad() {
	run "$POSTGATE" -c "$conf" check-config
	expect "$1" 78 "" "$conf:$2: $3"
}

# ---- the good file ----

config good <<EOF
# The example of issue 3.
[site]
name = HQ
domains = example.com
state_dir = /var/lib/postgate
gateway_po = CORP/GW
user = postgate
hop_limit = 30
bundle_level = 6
proxy_templates = SMTP:%m@example.com, smtp:%m@hq.example.com
[smtpd]
listen = 127.0.0.1:2525
hostname = gw.example.com
relay_networks =
max_message_size = 10485760
max_recipients = 1000
max_connections = 1000
tls_cert_file =
tls_key_file =
[delivery]
relay_host = [127.0.0.1]:10027
resolver =
tls = may
tls_ca_file =
auth_user =
auth_password_file =
min_backoff = 300s
max_backoff = 4000s
queue_lifetime = 5d
single_message_memory = 1d
[directory]
tombstone_lifetime = 180d
[postoffice CORP/HQ]
dir = $work/po/hq
key_file = $work/hq.key
codepage = CP850
[postoffice corp/sales]
dir = $work/po/sales
key_file = $work/sales.key
codepage = cp1252
[site-link B]
domains = b.example.com
host = 127.0.0.1:2526
EOF
good_out="[site]
name = HQ
domains = example.com
gateway_po = CORP/GW
proxy_templates = SMTP:%m@example.com, smtp:%m@hq.example.com

[smtpd]
hostname = gw.example.com

[delivery]
relay_host = [127.0.0.1]:10027

[postoffice CORP/HQ]
dir = $work/po/hq
key_file = $work/hq.key
codepage = CP850

[postoffice CORP/SALES]
dir = $work/po/sales
key_file = $work/sales.key
codepage = CP1252

[site-link B]
domains = b.example.com
host = 127.0.0.1:2526"
run "$POSTGATE" -c "$conf" check-config
expect "good file: exit 0, non-default settings printed" 0 "$good_out" ""

# What check-config prints is itself a good configuration file.
printf '%s\n' "$good_out" >"$work/printed.conf"
run "$POSTGATE" --config="$work/printed.conf" check-config
expect "printed settings are a good file that prints the same" 0 "$good_out" ""

# The example configuration is good, once it points at the fixtures.
sed -e "s|^dir = .*|dir = $work/po/hq|" -e "s|^key_file = .*|key_file = $work/hq.key|" \
    "$srcdir/contrib/postgate.conf.example" >"$work/example.conf"
run "$POSTGATE" -c "$work/example.conf" check-config
if [ "$rc" = 0 ] && grep -qx 'gateway_po = CORP/GW' "$work/out"; then
	pass "contrib/postgate.conf.example is a good file"
else
	fail "contrib/postgate.conf.example (exit $rc: $(cat "$work/err"))"
fi

# ---- each bad case of issue 3, pinned to FILE:LINE: ----

config unknown-group <<EOF
$SITE
[smtp]
listen = 127.0.0.1:25
EOF
check_bad "unknown group" 5 "unknown group [smtp]"

config unknown-key <<EOF
$SITE
colour = blue
EOF
check_bad "unknown key" 5 "unknown key colour in [site]"

config bad-value <<EOF
$SITE
[delivery]
# five minutes
min_backoff = 5 minutes
EOF
check_bad "bad value" 7 \
    'min_backoff: "5 minutes" is not a duration (N, Ns, Nm, Nh, Nd or Nw)'

config out-of-range <<EOF
$SITE
bundle_level = 10
EOF
check_bad "value out of range" 5 'bundle_level: "10" is out of range (0 to 9)'

config duplicate-group <<EOF
$SITE
[smtpd]
[site]
EOF
check_bad "duplicate group" 6 "duplicate group [site] (first at line 1)"

config duplicate-key <<EOF
$SITE

hop_limit = 30
hop_limit = 31
EOF
check_bad "duplicate key" 7 "duplicate key hop_limit in [site] (first at line 6)"

config missing-key <<EOF
# no gateway_po
[site]
name = HQ
domains = example.com
EOF
check_bad "missing required key" 2 "missing required key gateway_po in [site]"

config missing-po-key <<EOF
$SITE
[postoffice CORP/HQ]
dir = $work/po/hq
codepage = CP850
EOF
check_bad "missing required key in [postoffice]" 5 \
    "missing required key key_file in [postoffice CORP/HQ]"

config missing-group <<EOF
[smtpd]
listen = 127.0.0.1:2525
EOF
check_bad "missing required group" 1 "missing required group [site]"

config unreadable-key <<EOF
$SITE
[postoffice CORP/HQ]
dir = $work/po/hq
key_file = $work/none.key
codepage = CP850
EOF
check_bad "unreadable key file" 7 \
    "key file $work/none.key is unreadable: No such file or directory"

if [ "$(id -u)" != 0 ]; then
	cp "$work/hq.key" "$work/locked.key"
	chmod 000 "$work/locked.key"
	config locked-key <<-EOF
	$SITE
	[postoffice CORP/HQ]
	dir = $work/po/hq
	key_file = $work/locked.key
	codepage = CP850
	EOF
	check_bad "key file without read permission" 7 \
	    "key file $work/locked.key is unreadable: Permission denied"
fi

config short-key <<EOF
$SITE
[postoffice CORP/HQ]
dir = $work/po/hq
key_file = $work/short.key
codepage = CP850
EOF
check_bad "too-short key file" 7 \
    "key file $work/short.key is too short: 31 bytes, at least 32 needed"

config missing-dir <<EOF
$SITE
[postoffice CORP/HQ]
dir = $work/po/none
key_file = $work/hq.key
codepage = CP850
EOF
check_bad "missing postoffice dir" 6 "dir $work/po/none does not exist"

# Every error at once, one line each, in line order.
config many <<EOF
[site]
name = HQ
gateway_po = CORP
[smtpd]
colour = red
EOF
run "$POSTGATE" -c "$conf" check-config
expect "all errors reported, in line order" 78 "" \
"$conf:1: missing required key domains in [site]
$conf:3: gateway_po: bad address \"CORP\": a postoffice is written NET/PO
$conf:5: unknown key colour in [smtpd]"

run "$POSTGATE" -c "$work/none.conf" check-config
expect "missing configuration file" 78 "" \
    "$work/none.conf: cannot open: No such file or directory"

# ---- issue 12: FIFOs, an empty file, no knock-on errors, private state ----

for cmd in check-config run smtpd; do
	run $T "$POSTGATE" -c "$work/fifo" $cmd
	expect "a FIFO as the configuration file: $cmd refuses it at once" 78 "" \
	    "$work/fifo: is not a regular file (a FIFO)"
done

config fifo-key <<EOF
$SITE
state_dir = $work/fifo-state
[postoffice CORP/HQ]
dir = $work/po/hq
key_file = $work/fifo
codepage = CP850
EOF
for cmd in check-config run smtpd; do
	run $T "$POSTGATE" -c "$conf" $cmd
	expect "a FIFO as a key file: $cmd refuses it at once, with FILE:LINE" 78 "" \
	    "$conf:8: key file $work/fifo is not a regular file (a FIFO)"
done

config fifo-password <<EOF
$SITE
[delivery]
auth_user = gw
auth_password_file = $work/fifo
[smtpd]
tls_cert_file = $work/fifo
tls_key_file = $work/po
EOF
run $T "$POSTGATE" -c "$conf" check-config
expect "a FIFO as the password or TLS file, a directory as the TLS key" 78 "" \
"$conf:7: auth_password_file $work/fifo is not a regular file (a FIFO)
$conf:9: tls_cert_file $work/fifo is not a regular file (a FIFO)
$conf:10: tls_key_file $work/po is not a regular file (a directory)"

: >"$work/empty.conf"
run "$POSTGATE" -c "$work/empty.conf" check-config
expect "an empty file: the missing [site], nothing undefined" 78 "" \
    "$work/empty.conf:1: missing required group [site]"

printf '[site]\nname = H\001Q\ndomains = example.com\ngateway_po = CORP/GW\n' \
    >"$work/byte.conf"
run "$POSTGATE" -c "$work/byte.conf" check-config
expect "a bad byte on line 2: that error only, not line 1's missing key" 78 "" \
    "$work/byte.conf:2: control character 0x01 in line"

config misspelt <<EOF
[site]
nmae = HQ
domains = example.com
gateway_po = CORP/GW
EOF
check_bad "a misspelt required key: the unknown key, not also a missing one" 2 \
    "unknown key nmae in [site]"

printf '[sit\001e]\nname = HQ\n' >"$work/header.conf"
run "$POSTGATE" -c "$work/header.conf" check-config
expect "an unreadable group header: no missing [site] before it" 78 "" \
    "$work/header.conf:1: control character 0x01 in line"

# Warnings, exit 0: a key file others may read, a state dir others may list.
mkdir -m 755 "$work/open-state"
cp "$work/hq.key" "$work/open.key"
chmod 644 "$work/open.key"
config open <<EOF
$SITE
state_dir = $work/open-state
[postoffice CORP/HQ]
dir = $work/po/hq
key_file = $work/open.key
codepage = CP850
EOF
run "$POSTGATE" -c "$conf" check-config
expect "warnings for a 0644 key file and a 0755 state_dir; exit 0" 0 \
"[site]
name = HQ
domains = example.com
state_dir = $work/open-state
gateway_po = CORP/GW

[postoffice CORP/HQ]
dir = $work/po/hq
key_file = $work/open.key
codepage = CP850" \
"postgate: warning: state_dir $work/open-state is world-accessible (mode 0755): chmod 700 $work/open-state
postgate: warning: key file $work/open.key is world-accessible (mode 0644): chmod 600 $work/open.key"

# A state file the group may read; owners other than [site] user.
: >"$work/open-state/queue.db"
chmod 640 "$work/open-state/queue.db"
chmod 700 "$work/open-state"
chmod 600 "$work/open.key"
other=nobody
[ "$(id -un)" = nobody ] && other=root
me=$(id -un)
sed "s/^gateway_po = CORP\/GW\$/&\nuser = $other/" "$work/open.conf" >"$work/owner.conf"
run "$POSTGATE" -c "$work/owner.conf" check-config
if [ "$rc" = 0 ] &&
    grep -qxF "postgate: warning: state file $work/open-state/queue.db is group-accessible (mode 0640): chmod 600 $work/open-state/queue.db" "$work/err" &&
    grep -qxF "postgate: warning: state_dir $work/open-state is owned by $me, not by [site] user $other" "$work/err" &&
    grep -qxF "postgate: warning: key file $work/open.key is owned by $me, not by [site] user $other" "$work/err" &&
    grep -qxF "postgate: warning: postoffice dir $work/po/hq is owned by $me, not by [site] user $other" "$work/err"; then
	pass "warnings for a group-readable state file and files [site] user does not own"
else
	fail "state file and owner warnings (exit $rc)"
	sed 's/^/   /' "$work/err"
fi

# ---- the command line ----

run "$POSTGATE" --version
if [ "$rc" = 0 ] && grep -Eqx 'postgate [0-9]+\.[0-9]+\.[0-9]+.*' "$work/out"; then
	pass "--version"
else
	fail "--version (exit $rc: $(cat "$work/out" "$work/err"))"
fi

run "$POSTGATE" --help
if [ "$rc" = 0 ] && grep -q 'check-config' "$work/out" &&
    grep -q -- '--config=FILE' "$work/out" && [ ! -s "$work/err" ]; then
	pass "--help"
else
	fail "--help (exit $rc)"
fi

run "$POSTGATE" check-config --help
if [ "$rc" = 0 ] && grep -q 'Usage: postgate \[-c FILE\] check-config' "$work/out"; then
	pass "check-config --help"
else
	fail "check-config --help (exit $rc)"
fi

run "$POSTGATE" frobnicate
expect "unknown command: usage error" 64 "" \
    'postgate: error: unknown command "frobnicate" (see postgate --help)'

run "$POSTGATE"
expect "no command: usage error" 64 "" \
    "postgate: error: no command given (see postgate --help)"

run "$POSTGATE" --no-such-option check-config
if [ "$rc" = 64 ]; then pass "unknown option: usage error"; else fail "unknown option (exit $rc)"; fi

run "$POSTGATE" -c "$work/good.conf" check-config extra
if [ "$rc" = 64 ]; then pass "check-config takes no arguments"; else fail "check-config extra (exit $rc)"; fi

# ---- the man page is what the key table generates ----

run "$POSTGATE" config-manpage
if [ "$rc" = 0 ] && cmp -s "$work/out" "$srcdir/docs/postgate.conf.5"; then
	pass "docs/postgate.conf.5 is the output of config-manpage"
else
	fail "docs/postgate.conf.5 differs from config-manpage (exit $rc); regenerate: postgate config-manpage > docs/postgate.conf.5"
	diff "$srcdir/docs/postgate.conf.5" "$work/out" | head -20 | sed 's/^/   /'
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
