use model::{
    AuthError, BootConfig, ConfigError, ConfigErrorKind, MAX_TENANTS, NameError, OperatorToken, TenantId, TokenTable,
    bearer_token,
};

const ALICE: &str = "pappus-dev-0123456789abcdef0123456789abcdef";
const BOB: &str = "Zm9vYmFyYmF6cXV4LXRva2VuLTI=";

fn config() -> String {
    format!(
        "# tenants of this boot\n\ntenant alice {ALICE}\r\n\t tenant\tbob   {BOB}   # trailing comment\n#tenant eve x\n"
    )
}

#[test]
fn parses_the_documented_format() {
    let table = TokenTable::parse(config().as_bytes()).unwrap();
    assert_eq!(table.len(), 2);
    assert!(!table.is_empty());
    let alice = table.find("alice").unwrap();
    let bob = table.find("bob").unwrap();
    assert_eq!((alice, bob), (TenantId::new(0), TenantId::new(1)));
    assert_eq!(table.name(bob), Some("bob"));
    assert_eq!(table.name(TenantId::new(2)), None);
    assert_eq!(table.find("eve"), None);
    assert_eq!(table.tenants().collect::<Vec<_>>(), [(alice, "alice"), (bob, "bob")]);
    assert_eq!(table.lookup(ALICE.as_bytes()), Some(alice));
    assert_eq!(table.lookup(BOB.as_bytes()), Some(bob));
    assert_eq!(format!("{table:?}"), "[\"alice\", \"bob\"]", "Debug shows names only");
    assert_eq!(alice.index(), 0);
    assert_eq!(bob.to_string(), "tenant#1");
}

#[test]
fn empty_configuration_is_an_empty_table() {
    let table = TokenTable::parse(b"# nobody yet\n\n").unwrap();
    assert!(table.is_empty());
    assert_eq!(table.lookup(ALICE.as_bytes()), None);
}

#[test]
fn lookup_needs_the_whole_token() {
    let table = TokenTable::parse(config().as_bytes()).unwrap();
    for wrong in [&ALICE[..ALICE.len() - 1], &format!("{ALICE}x"), "", &ALICE.to_uppercase(), "pappus"] {
        assert_eq!(table.lookup(wrong.as_bytes()), None, "{wrong}");
    }
}

fn config_error(text: &str) -> ConfigError {
    TokenTable::parse(text.as_bytes()).unwrap_err()
}

#[test]
fn errors_name_the_line_and_never_the_token() {
    let cases: Vec<(String, usize, ConfigErrorKind)> = vec![
        (format!("\n\nuser alice {ALICE}"), 3, ConfigErrorKind::UnknownDirective("user".into())),
        ("tenant".into(), 1, ConfigErrorKind::MissingName),
        ("tenant alice".into(), 1, ConfigErrorKind::MissingToken),
        (format!("tenant alice {ALICE} extra"), 1, ConfigErrorKind::ExtraField),
        (format!("tenant -alice {ALICE}"), 1, ConfigErrorKind::BadName(NameError::BadStart('-'))),
        ("tenant alice short".into(), 1, ConfigErrorKind::BadToken("shorter than 16 characters")),
        (format!("tenant alice {}", "a".repeat(257)), 1, ConfigErrorKind::BadToken("longer than 256 characters")),
        (
            "tenant alice pappus-dev-0123456789abcdef!".into(),
            1,
            ConfigErrorKind::BadToken("only letters, digits, `-._~+/` and trailing `=` are allowed"),
        ),
        (
            "tenant alice ====================".into(),
            1,
            ConfigErrorKind::BadToken("only letters, digits, `-._~+/` and trailing `=` are allowed"),
        ),
        (
            "tenant alice abc=def0123456789abcdef".into(),
            1,
            ConfigErrorKind::BadToken("only letters, digits, `-._~+/` and trailing `=` are allowed"),
        ),
        (format!("tenant alice {ALICE}\n# x\ntenant alice {BOB}"), 3, ConfigErrorKind::DuplicateName { first_line: 1 }),
        (format!("tenant alice {ALICE}\ntenant bob {ALICE}"), 2, ConfigErrorKind::DuplicateToken { first_line: 1 }),
    ];
    for (text, line, kind) in cases {
        let e = config_error(&text);
        assert_eq!((e.line, &e.kind), (line, &kind), "{text}");
        let message = e.to_string();
        assert!(message.starts_with(&format!("boot configuration, line {line}: ")), "{message}");
        assert!(!message.contains(ALICE) && !message.contains(BOB), "{message}");
    }
    assert_eq!(
        config_error("tenant alice").to_string(),
        "boot configuration, line 1: missing token (expected `tenant <name> <token>` or `operator <token>`)"
    );
}

#[test]
fn invalid_utf8_names_its_line() {
    let mut text = format!("tenant alice {ALICE}\n").into_bytes();
    text.extend_from_slice(b"tenant b\xffb 0123456789abcdef0\n");
    let e = TokenTable::parse(&text).unwrap_err();
    assert_eq!(e, ConfigError { line: 2, kind: ConfigErrorKind::InvalidUtf8 });
}

#[test]
fn size_and_count_are_bounded() {
    let e = TokenTable::parse(&vec![b'#'; model::MAX_CONFIG_BYTES + 1]).unwrap_err();
    assert_eq!(e.line, 0);
    assert!(e.to_string().starts_with("boot configuration: 1048577 bytes"));
    let text: String = (0..=MAX_TENANTS).map(|i| format!("tenant t{i} token-{i:016}\n")).collect();
    let e = TokenTable::parse(text.as_bytes()).unwrap_err();
    assert_eq!(e, ConfigError { line: MAX_TENANTS + 1, kind: ConfigErrorKind::TooManyTenants });
    let table = TokenTable::parse(text.lines().take(MAX_TENANTS).collect::<Vec<_>>().join("\n").as_bytes()).unwrap();
    assert_eq!(table.len(), MAX_TENANTS);
    assert_eq!(table.lookup(b"token-0000000000001023"), Some(TenantId::new(1023)));
}

#[test]
fn bearer_header_values() {
    assert_eq!(bearer_token(b"Bearer abc"), Ok(&b"abc"[..]));
    assert_eq!(bearer_token(b"  bearer   abc==  "), Ok(&b"abc=="[..]));
    assert_eq!(bearer_token(b"BEARER\tabc"), Ok(&b"abc"[..]));
    assert_eq!(bearer_token(b"Basic dXNlcjpwYXNz"), Err(AuthError::NotBearer));
    assert_eq!(bearer_token(b"Bearerabc"), Err(AuthError::NotBearer));
    assert_eq!(bearer_token(b"Bearer"), Err(AuthError::Malformed));
    assert_eq!(bearer_token(b"Bearer "), Err(AuthError::Malformed));
    assert_eq!(bearer_token(b""), Err(AuthError::Malformed));
    assert_eq!(bearer_token(b"Bearer a b"), Err(AuthError::Malformed));
    assert_eq!(bearer_token(b"Bearer =="), Err(AuthError::Malformed));
    assert_eq!(bearer_token(b"Bearer a=b"), Err(AuthError::Malformed));
    assert_eq!(bearer_token(b"Bearer \xff"), Err(AuthError::Malformed));
    assert_eq!(bearer_token(format!("Bearer {}", "a".repeat(257)).as_bytes()), Err(AuthError::Malformed));
}

#[test]
fn authenticate() {
    let table = TokenTable::parse(config().as_bytes()).unwrap();
    let header = format!("Bearer {BOB}");
    assert_eq!(table.authenticate(Some(header.as_bytes())), Ok(TenantId::new(1)));
    assert_eq!(table.authenticate(None), Err(AuthError::Missing));
    assert_eq!(table.authenticate(Some(b"Basic x")), Err(AuthError::NotBearer));
    assert_eq!(table.authenticate(Some(b"Bearer 0123456789abcdef0123")), Err(AuthError::UnknownToken));
    assert_eq!(AuthError::UnknownToken.to_string(), "unknown token");
}

#[test]
fn host_lines_make_the_host_table() {
    use model::{BootConfig, HostLineError};
    use std::net::Ipv4Addr;
    let text = format!(
        "tenant alice {ALICE}\nhost docs.internal 10.0.2.2   # the test server\n\thost\tMirror-1 192.168.1.20\r\n"
    );
    let config = BootConfig::parse(text.as_bytes()).unwrap();
    assert_eq!(config.hosts.dns_server(), None);
    assert_eq!(config.tenants.len(), 1);
    assert_eq!(config.hosts.len(), 2);
    assert_eq!(config.hosts.lookup("docs.internal"), Some(Ipv4Addr::new(10, 0, 2, 2)));
    assert_eq!(config.hosts.lookup("MIRROR-1"), Some(Ipv4Addr::new(192, 168, 1, 20)), "names ignore case");
    assert_eq!(config.hosts.lookup("docs"), None);
    assert_eq!(
        config.hosts.iter().collect::<Vec<_>>(),
        [("docs.internal", Ipv4Addr::new(10, 0, 2, 2)), ("mirror-1", Ipv4Addr::new(192, 168, 1, 20))]
    );
    // The tenants-only parser accepts the same file and keeps its tenants.
    assert_eq!(TokenTable::parse(text.as_bytes()).unwrap().len(), 1);

    let cases: Vec<(&str, usize, HostLineError)> = vec![
        ("host", 1, HostLineError::MissingName),
        ("host a", 1, HostLineError::MissingAddress),
        ("host a 10.0.2.2 x", 1, HostLineError::ExtraField),
        ("host a 10.0.2", 1, HostLineError::BadAddress),
        ("host a 10.0.2.256", 1, HostLineError::BadAddress),
        ("host a 010.0.2.2", 1, HostLineError::BadAddress),
        ("host a ::1", 1, HostLineError::BadAddress),
        ("host 10.0.2.3 10.0.2.2", 1, HostLineError::BadName("an IPv4 address is not a name")),
        ("host a..b 10.0.2.2", 1, HostLineError::BadName("empty label (two dots in a row, or a dot at either end)")),
        ("host -a 10.0.2.2", 1, HostLineError::BadName("a label starts or ends with `-`")),
        ("host a_b 10.0.2.2", 1, HostLineError::BadName("only letters, digits, `-` and `.` are allowed")),
        ("\nhost a 10.0.2.2\nhost A 10.0.2.3", 3, HostLineError::DuplicateName { first_line: 2 }),
        ("dns", 1, HostLineError::MissingAddress),
        ("dns 10.0.2.3 x", 1, HostLineError::ExtraField),
        ("dns dns.example", 1, HostLineError::BadAddress),
        ("dns 10.0.2.3\ndns 10.0.2.4", 2, HostLineError::DuplicateDns { first_line: 1 }),
    ];
    for (text, line, kind) in cases {
        let e = BootConfig::parse(text.as_bytes()).unwrap_err();
        assert_eq!((e.line, &e.kind), (line, &ConfigErrorKind::Host(kind.clone())), "{text}");
        assert!(e.to_string().starts_with(&format!("boot configuration, line {line}: ")), "{e}");
    }
    let long = format!("host {}.b 10.0.2.2", "a".repeat(64));
    assert!(BootConfig::parse(long.as_bytes()).unwrap_err().to_string().contains("label longer than 63"));
    let e = BootConfig::parse(b"hots a 10.0.2.2").unwrap_err();
    assert_eq!(
        e.to_string(),
        "boot configuration, line 1: unknown directive \"hots\" (expected tenant, operator, host, dns, ip, gateway, compute, limit, etcd or blobs)"
    );
    let text: String = (0..=model::MAX_HOSTS).map(|i| format!("host h{i} 10.0.{}.{}\n", i / 256, i % 256)).collect();
    let e = BootConfig::parse(text.as_bytes()).unwrap_err();
    assert_eq!(e, ConfigError { line: model::MAX_HOSTS + 1, kind: ConfigErrorKind::Host(HostLineError::TooManyHosts) });
}

#[test]
fn a_dns_line_names_the_dns_server() {
    use model::BootConfig;
    use std::net::Ipv4Addr;
    let config = BootConfig::parse(b"host a 10.0.2.2\ndns 10.0.2.3  # QEMU's resolver\n").unwrap();
    assert_eq!(config.hosts.dns_server(), Some(Ipv4Addr::new(10, 0, 2, 3)));
    assert_eq!(config.hosts.len(), 1, "dns is not a host");
    assert_eq!(format!("{:?}", config.hosts), "{\"a\": 10.0.2.2, \"(dns)\": 10.0.2.3}");
}

const OPS: &str = "ops-token-0123456789abcdef";

#[test]
fn operator_token_opens_only_with_itself() {
    let config = BootConfig::parse(format!("{}operator {OPS}   # for /metrics\n", config()).as_bytes()).unwrap();
    assert!(config.operator.is_set());
    assert_eq!(format!("{:?}", config.operator), "OperatorToken(set)", "Debug never shows the digest");
    let ops = config.operator;
    assert_eq!(ops.authenticate(Some(format!("Bearer {OPS}").as_bytes())), Ok(()));
    assert_eq!(ops.authenticate(Some(format!("bearer  {OPS} ").as_bytes())), Ok(()));
    assert_eq!(ops.authenticate(None), Err(AuthError::Missing));
    assert_eq!(ops.authenticate(Some(b"Basic x")), Err(AuthError::NotBearer));
    assert_eq!(ops.authenticate(Some(b"Bearer")), Err(AuthError::Malformed));
    // A tenant's token is not the operator's, nor is a prefix or extension of it.
    for wrong in [ALICE, BOB, &OPS[..OPS.len() - 1], &format!("{OPS}0")] {
        assert_eq!(
            ops.authenticate(Some(format!("Bearer {wrong}").as_bytes())),
            Err(AuthError::UnknownToken),
            "{wrong}"
        );
    }
    // The tenants are unchanged by the operator line.
    assert_eq!(config.tenants.len(), 2);
    assert_eq!(config.tenants.lookup(OPS.as_bytes()), None);
}

#[test]
fn without_an_operator_line_nothing_opens() {
    let config = BootConfig::parse(config().as_bytes()).unwrap();
    assert!(!config.operator.is_set());
    assert_eq!(format!("{:?}", config.operator), "OperatorToken(none)");
    for token in [ALICE, BOB, OPS, "0000000000000000"] {
        assert_eq!(
            config.operator.authenticate(Some(format!("Bearer {token}").as_bytes())),
            Err(AuthError::UnknownToken),
            "{token}"
        );
    }
    let made = OperatorToken::new(OPS).unwrap();
    assert_eq!(made.authenticate(Some(format!("Bearer {OPS}").as_bytes())), Ok(()));
    assert_eq!(OperatorToken::new("short").unwrap_err(), ConfigErrorKind::BadToken("shorter than 16 characters"));
}

#[test]
fn operator_line_errors() {
    let bad = |text: String| BootConfig::parse(text.as_bytes()).unwrap_err();
    let cases: Vec<(String, usize, ConfigErrorKind)> = vec![
        ("operator".into(), 1, ConfigErrorKind::MissingToken),
        (format!("operator {OPS} extra"), 1, ConfigErrorKind::ExtraField),
        ("operator short".into(), 1, ConfigErrorKind::BadToken("shorter than 16 characters")),
        (format!("operator {OPS}\n\noperator {ALICE}"), 3, ConfigErrorKind::DuplicateOperator { first_line: 1 }),
        // The operator's token is nobody else's, in either order.
        (format!("tenant alice {ALICE}\noperator {ALICE}"), 2, ConfigErrorKind::DuplicateToken { first_line: 1 }),
        (format!("operator {ALICE}\ntenant alice {ALICE}"), 2, ConfigErrorKind::DuplicateToken { first_line: 1 }),
    ];
    for (text, line, kind) in cases {
        let e = bad(text.clone());
        assert_eq!((e.line, &e.kind), (line, &kind), "{text}");
        let message = e.to_string();
        assert!(!message.contains(ALICE) && !message.contains(OPS), "{message}");
    }
    assert_eq!(
        bad(format!("operator {OPS}\noperator {OPS}")).to_string(),
        "boot configuration, line 2: the operator token is already given on line 1"
    );
}
