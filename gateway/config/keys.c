/* keys.c - the one key table of postgate.conf, and its value types and groups.
 *
 * Owns: the rows that are the single source of truth for the configuration:
 * every key (group, name, type, default, range, flags, doc line), every
 * value type (name, doc line) and every group (header, doc line).  The
 * reader validates each value against its row (parse.c, values.c),
 * `check-config` prints what differs from the row's default (check.c), and
 * `config-manpage` writes docs/postgate.conf.5 from the rows (doc.c).
 * Never: code.  A new key is a ConfigKey in pg_config.h and a row here.
 */
#include "config.h"

#include "config/config_int.h"

#include "pg_limits.h"

const CfgTypeInfo cfg_types[T_COUNT] = {
	[T_STRING] = { "string", FALSE, "Any text up to the end of the line." },
	[T_NAME] = { "name", FALSE,
	    "1 to 32 of the characters A-Z a-z 0-9 - _ (as sync files carry it)." },
	[T_INT] = { "integer", FALSE, "A whole number in decimal." },
	[T_SIZE] = { "size", FALSE,
	    "A number of bytes: N, or Nk, NM, NG for multiples of 1024, 1024^2, 1024^3." },
	[T_DURATION] = { "duration", FALSE,
	    "N followed by s, m, h, d or w for seconds, minutes, hours, days or "
	    "weeks; a plain N is seconds." },
	[T_ENUM] = { "word", FALSE, "One of the words listed with the key." },
	[T_PATH] = { "path", FALSE, "An absolute path name." },
	[T_HOSTNAME] = { "hostname", FALSE,
	    "A domain name: labels of A-Z a-z 0-9 and -, separated by dots." },
	[T_HOSTPORT] = { "host", FALSE,
	    "HOST:PORT, where HOST is a domain name or an IPv4 address, or "
	    "[HOST]:PORT, which also takes an IPv6 address; :PORT may be left "
	    "out for the port given with the key." },
	[T_PO] = { "postoffice", FALSE,
	    "A legacy postoffice NET/PO: two parts of 1 to 10 of A-Z 0-9 - _, "
	    "case-insensitive." },
	[T_MAILBOX] = { "mailbox", FALSE,
	    "A legacy mailbox NET/PO/MAILBOX: three parts of 1 to 10 of A-Z 0-9 - _, "
	    "case-insensitive." },
	[T_CODEPAGE] = { "codepage", FALSE,
	    "A codepage name that iconv converts to and from UTF-8, such as "
	    "CP437, CP850 or CP1252; case-insensitive." },
	[T_DOMAINS] = { "domain list", TRUE, "Comma-separated domain names." },
	[T_NETWORKS] = { "network list", TRUE,
	    "Comma-separated networks, ADDRESS/PREFIX or a single ADDRESS, IPv4 "
	    "or IPv6, with no host bits set beyond the prefix." },
	[T_NAMESERVERS] = { "nameserver list", TRUE,
	    "Comma-separated IP[:PORT] items, IPv6 addresses in brackets; the "
	    "port is 53 when left out." },
	[T_LISTEN] = { "address list", TRUE,
	    "Comma-separated IP:PORT items, IPv6 addresses in brackets "
	    "([::1]:25); the port is the one given with the key when left out." },
	[T_PROXIES] = { "proxy template list", TRUE,
	    "Comma-separated templates, each SMTP:LOCAL@DOMAIN (the primary "
	    "address; the first one counts) or smtp:LOCAL@DOMAIN (a secondary "
	    "one).  In a template %m is the mailbox in lower case, %p the "
	    "postoffice, %n the network and %% a percent sign; every template "
	    "holds %m, and a list that is not empty holds an SMTP: one." },
};

const CfgKeyInfo cfg_keys[CONFIG_KEY_COUNT] = {
	[CONFIG_SITE_NAME] = { CONFIG_GROUP_SITE, "name", T_NAME, NULL, 0, 0, NULL, 0, 0,
	    "Name of this site, as peer sites know it in their [site-link] groups "
	    "and as the origin of its directory changes." },
	[CONFIG_SITE_DOMAINS] = { CONFIG_GROUP_SITE, "domains", T_DOMAINS, NULL, 0, 0,
	    NULL, 0, 0,
	    "SMTP domains this site owns: mail for them is accepted when the "
	    "directory knows the recipient." },
	[CONFIG_SITE_STATE_DIR] = { CONFIG_GROUP_SITE, "state_dir", T_PATH,
	    "/var/lib/postgate", 0, 0, NULL, 0, 0,
	    "Directory of the queue, the address directory and the bundle "
	    "sequence ledgers.  Private: created 0700 when missing (owned by "
	    "user when started as root), its files 0600." },
	[CONFIG_SITE_GATEWAY_PO] = { CONFIG_GROUP_SITE, "gateway_po", T_PO, NULL, 0, 0,
	    NULL, 0, 0,
	    "The gateway's own postoffice in the legacy network: the source of the "
	    "bundles it writes and the legacy home of custom recipients." },
	[CONFIG_SITE_POSTMASTER] = { CONFIG_GROUP_SITE, "postmaster", T_MAILBOX, "", 0,
	    0, NULL, 0, 0,
	    "The legacy mailbox that receives mail for postmaster (bare, or at any "
	    "of the site's domains, RFC 5321 4.5.1) and what postgate reports to "
	    "the postmaster; it must be on a postoffice this site serves.  Empty: "
	    "the POSTMASTER mailbox of the first [postoffice]." },
	[CONFIG_SITE_USER] = { CONFIG_GROUP_SITE, "user", T_STRING, "postgate", 0, 0,
	    NULL, 0, K_EMPTY_OK,
	    "User to switch to when started as root; empty: keep the invoking user "
	    "(a warning is logged when that is root)." },
	[CONFIG_SITE_HOP_LIMIT] = { CONFIG_GROUP_SITE, "hop_limit", T_INT, "30", 1,
	    MSG_MAX_HOPS, NULL, 0, 0,
	    "A message that has crossed more gateways than this is stopped and "
	    "reported, never looped." },
	[CONFIG_SITE_REPORT_WINDOW] = { CONFIG_GROUP_SITE, "report_window", T_DURATION,
	    "7d", 0, 365 * DAY, NULL, 0, 0,
	    "How long the gateway remembers a message after it left the queue, "
	    "for the report that may come back about it: an Internet message it "
	    "wrote into a postoffice (its envelope, its header section and, for "
	    "RET=FULL, the message up to 1 MiB), whose postoffice's non-delivery "
	    "report or receipt becomes a DSN to the SMTP sender; and a legacy "
	    "message's copy it sent over SMTP, whose Internet bounce becomes a "
	    "legacy non-delivery report.  A report that comes later is delivered "
	    "as an ordinary message.  0: remember nothing." },
	[CONFIG_SITE_BUNDLE_LEVEL] = { CONFIG_GROUP_SITE, "bundle_level", T_INT, "6", 0,
	    9, NULL, 0, 0,
	    "zlib compression level of the bundles the gateway writes." },
	[CONFIG_SITE_PROXY_TEMPLATES] = { CONFIG_GROUP_SITE, "proxy_templates",
	    T_PROXIES, "", 0, 0, NULL, 0, 0,
	    "Proxy addresses this site gives its own mailboxes, lists and custom "
	    "recipients (%m mailbox, %p postoffice, %n network, in lower case); the "
	    "first SMTP: one is the primary.  Existing proxies never change: a new "
	    "template adds secondaries on the next import.  Needed before postoffice "
	    "exports can be imported." },

	[CONFIG_SMTPD_LISTEN] = { CONFIG_GROUP_SMTPD, "listen", T_LISTEN,
	    "127.0.0.1:2525", 0, 0, NULL, 25, 0,
	    "IP addresses and ports the SMTP listener binds, every one of them." },
	[CONFIG_SMTPD_HOSTNAME] = { CONFIG_GROUP_SMTPD, "hostname", T_HOSTNAME, "", 0,
	    0, NULL, 0, 0,
	    "Name the listener gives in its greeting and Received: headers; empty: "
	    "the system's host name." },
	[CONFIG_SMTPD_RELAY_NETWORKS] = { CONFIG_GROUP_SMTPD, "relay_networks",
	    T_NETWORKS, "", 0, 0, NULL, 0, 0,
	    "Clients trusted to send mail through the listener to domains other "
	    "than this site's and its linked sites'; empty: no client may." },
	[CONFIG_SMTPD_MAX_MESSAGE_SIZE] = { CONFIG_GROUP_SMTPD, "max_message_size",
	    T_SIZE, "10485760", 1024, SMTP_MAX_MESSAGE_SIZE, NULL, 0, 0,
	    "Largest message the listener accepts, in bytes; announced with the "
	    "SIZE extension." },
	[CONFIG_SMTPD_MAX_RECIPIENTS] = { CONFIG_GROUP_SMTPD, "max_recipients", T_INT,
	    "1000", 1, MSG_MAX_RECIPIENTS, NULL, 0, 0,
	    "Most recipients the listener accepts for one message." },
	[CONFIG_SMTPD_MAX_CONNECTIONS] = { CONFIG_GROUP_SMTPD, "max_connections",
	    T_INT, "1000", 1, 100000, NULL, 0, 0,
	    "Most client connections the listener serves at once." },
	[CONFIG_SMTPD_TIMEOUT] = { CONFIG_GROUP_SMTPD, "timeout", T_DURATION, "5m",
	    1, HOUR, NULL, 0, 0,
	    "How long the listener waits for a client's next command or its next "
	    "piece of message data, and for a client to read a reply, before it "
	    "says 421 and closes." },
	[CONFIG_SMTPD_TLS_CERT_FILE] = { CONFIG_GROUP_SMTPD, "tls_cert_file", T_PATH,
	    "", 0, 0, NULL, 0, 0,
	    "PEM certificate chain for STARTTLS; empty: STARTTLS is not offered.  "
	    "Set together with tls_key_file." },
	[CONFIG_SMTPD_TLS_KEY_FILE] = { CONFIG_GROUP_SMTPD, "tls_key_file", T_PATH, "",
	    0, 0, NULL, 0, 0,
	    "PEM private key of tls_cert_file." },

	[CONFIG_DELIVERY_RELAY_HOST] = { CONFIG_GROUP_DELIVERY, "relay_host",
	    T_HOSTPORT, "", 0, 0, NULL, 25, 0,
	    "Host all outbound SMTP mail goes to; [HOST] is used as it is, a bare "
	    "HOST through its MX records; empty: deliver to each domain's MX." },
	[CONFIG_DELIVERY_RESOLVER] = { CONFIG_GROUP_DELIVERY, "resolver",
	    T_NAMESERVERS, "", 0, 0, NULL, 53, 0,
	    "Nameservers to ask; empty: those in /etc/resolv.conf." },
	[CONFIG_DELIVERY_TLS] = { CONFIG_GROUP_DELIVERY, "tls", T_ENUM, "may", 0, 0,
	    "none|may|encrypt|verify", 0, 0,
	    "STARTTLS towards SMTP servers: none never; may when offered, and in "
	    "plaintext again on a new connection when the handshake fails; encrypt "
	    "always (a server without it is not sent to: the recipients fail and are "
	    "reported); verify "
	    "as encrypt, and the server's certificate must verify against "
	    "tls_ca_file and name the host connected to." },
	[CONFIG_DELIVERY_TLS_CA_FILE] = { CONFIG_GROUP_DELIVERY, "tls_ca_file", T_PATH,
	    "", 0, 0, NULL, 0, 0,
	    "PEM certificates of the authorities that server certificates are "
	    "verified against; empty: the system's." },
	[CONFIG_DELIVERY_AUTH_USER] = { CONFIG_GROUP_DELIVERY, "auth_user", T_STRING,
	    "", 0, 0, NULL, 0, 0,
	    "User name for SMTP AUTH; empty: no AUTH.  Set together with "
	    "auth_password_file." },
	[CONFIG_DELIVERY_AUTH_PASSWORD_FILE] = { CONFIG_GROUP_DELIVERY,
	    "auth_password_file", T_PATH, "", 0, 0, NULL, 0, 0,
	    "File whose first line is the SMTP AUTH password; at most 4096 bytes." },
	[CONFIG_DELIVERY_MIN_BACKOFF] = { CONFIG_GROUP_DELIVERY, "min_backoff",
	    T_DURATION, "300s", 1 * SECOND, 1 * DAY, NULL, 0, 0,
	    "Shortest wait before a deferred delivery is tried again." },
	[CONFIG_DELIVERY_MAX_BACKOFF] = { CONFIG_GROUP_DELIVERY, "max_backoff",
	    T_DURATION, "4000s", 1 * SECOND, 7 * DAY, NULL, 0, 0,
	    "Longest wait between two tries; not less than min_backoff." },
	[CONFIG_DELIVERY_QUEUE_LIFETIME] = { CONFIG_GROUP_DELIVERY, "queue_lifetime",
	    T_DURATION, "5d", 1 * SECOND, 365 * DAY, NULL, 0, 0,
	    "How long a message may stay deferred before it is returned as "
	    "undeliverable." },
	[CONFIG_DELIVERY_DELAY_WARNING] = { CONFIG_GROUP_DELIVERY, "delay_warning",
	    T_DURATION, "4h", 0, 365 * DAY, NULL, 0, 0,
	    "How long a message may wait before its sender is told, once, that it is "
	    "delayed: a legacy sender whose message still waits for SMTP gets a legacy "
	    "report whose recipients are \"delayed\", an SMTP sender who asked "
	    "NOTIFY=DELAY a DSN with \"Action: delayed\" about the recipients not yet "
	    "written to their postoffice.  0: no delay notices." },
	[CONFIG_DELIVERY_SINGLE_MESSAGE_MEMORY] = { CONFIG_GROUP_DELIVERY,
	    "single_message_memory", T_DURATION, "1d", 1 * SECOND, 365 * DAY, NULL, 0, 0,
	    "How long a server that refused a second MAIL FROM in one session is "
	    "sent one message per session." },
	[CONFIG_DELIVERY_PORT] = { CONFIG_GROUP_DELIVERY, "port", T_INT, "25", 1, 65535,
	    NULL, 0, 0,
	    "TCP port of the SMTP servers found through MX or address records (a "
	    "relay_host or site-link host names its own port)." },
	[CONFIG_DELIVERY_CONNECT_TIMEOUT] = { CONFIG_GROUP_DELIVERY, "connect_timeout",
	    T_DURATION, "30s", 1, HOUR, NULL, 0, 0,
	    "How long to wait for a TCP connection to an SMTP server before "
	    "trying its next address." },
	[CONFIG_DELIVERY_TIMEOUT] = { CONFIG_GROUP_DELIVERY, "timeout", T_DURATION, "5m",
	    1, HOUR, NULL, 0, 0,
	    "How long to wait for each reply of an SMTP server (and for it to take "
	    "what is sent); the reply to the end of the message data gets twice "
	    "as long." },
	[CONFIG_DELIVERY_CONNECTIONS] = { CONFIG_GROUP_DELIVERY, "connections", T_INT,
	    "100", 1, 10000, NULL, 0, 0,
	    "Most SMTP connections a run holds open at once." },
	[CONFIG_DELIVERY_DESTINATION_CONNECTIONS] = { CONFIG_GROUP_DELIVERY,
	    "destination_connections", T_INT, "20", 1, 1000, NULL, 0, 0,
	    "Most SMTP connections to one destination (a relay host, a site link "
	    "or a domain's mail servers) at once." },

	[CONFIG_DIRECTORY_TOMBSTONE_LIFETIME] = { CONFIG_GROUP_DIRECTORY,
	    "tombstone_lifetime", T_DURATION, "180d", 1 * SECOND, 3650 * DAY, NULL, 0, 0,
	    "How long a deleted directory entry is kept as a tombstone, so that "
	    "every site learns of the deletion." },

	[CONFIG_PO_DIR] = { CONFIG_GROUP_POSTOFFICE, "dir", T_PATH, NULL, 0, 0, NULL, 0,
	    0,
	    "Drop directory of the postoffice: in/ holds bundles for it, out/ "
	    "bundles from it.  It must exist." },
	[CONFIG_PO_KEY_FILE] = { CONFIG_GROUP_POSTOFFICE, "key_file", T_PATH, NULL, 0,
	    0, NULL, 0, 0,
	    "File holding the secret key that authenticates the postoffice's "
	    "bundles: readable, at least 32 bytes not counting one final newline." },
	[CONFIG_PO_CODEPAGE] = { CONFIG_GROUP_POSTOFFICE, "codepage", T_CODEPAGE, NULL,
	    0, 0, NULL, 0, 0,
	    "Codepage of the text of the postoffice's users." },

	[CONFIG_LINK_DOMAINS] = { CONFIG_GROUP_SITE_LINK, "domains", T_DOMAINS, NULL,
	    0, 0, NULL, 0, 0,
	    "SMTP domains the peer site owns; mail for them goes to its gateway." },
	[CONFIG_LINK_HOST] = { CONFIG_GROUP_SITE_LINK, "host", T_HOSTPORT, NULL, 0, 0,
	    NULL, 25, 0,
	    "The peer gateway's SMTP listener." },
};

const CfgGroupInfo cfg_groups[CONFIG_GROUP_COUNT] = {
	[CONFIG_GROUP_SITE] = { "site", "[site]", FALSE,
	    "This site: its name, its domains, where its state lives.  The group "
	    "is required." },
	[CONFIG_GROUP_SMTPD] = { "smtpd", "[smtpd]", FALSE,
	    "The SMTP listener, postgate smtpd." },
	[CONFIG_GROUP_DELIVERY] = { "delivery", "[delivery]", FALSE,
	    "Outbound SMTP delivery and its retries." },
	[CONFIG_GROUP_DIRECTORY] = { "directory", "[directory]", FALSE,
	    "The address directory and its replication between sites." },
	[CONFIG_GROUP_POSTOFFICE] = { "postoffice", "[postoffice NET/PO]", TRUE,
	    "One group per legacy postoffice this site serves, named by its "
	    "NET/PO; none may be the gateway_po.  check-config makes sure the "
	    "drop directory exists and that the key file is a readable file "
	    "holding a long enough key." },
	[CONFIG_GROUP_SITE_LINK] = { "site-link", "[site-link NAME]", TRUE,
	    "One group per peer site, named by that site's [site] name; mail for "
	    "its domains goes to its gateway over SMTP.  No domain may belong to "
	    "two sites." },
};
