//! The generator against an in-process Parlor server (`--server-url`): the login storm and the
//! reconnect storm at a tiny size, with every count checked.

use clap::Parser;
use parlor_bench::{finish, run, BenchArgs};
use parlor_server::{Server, ServerConfig};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

async fn server() -> Server {
    let mut config = ServerConfig::for_tests(1, "parlor-dev-secret");
    config.room_message_rate = 1_000_000;
    config.user_message_rate = 1_000_000;
    config.request_rate = 1_000_000;
    config.outbound_limit = 64 << 20;
    Server::start(config).await.expect("server")
}

async fn bench(line: &str) -> Vec<parlor_bench::report::Report> {
    let server = server().await;
    let url = server.ws_url();
    let mut argv: Vec<String> = vec!["bench".into()];
    argv.extend(line.split_whitespace().map(String::from));
    argv.extend(["--server-url".into(), url, "--time-limit".into(), "60".into()]);
    let args = Cli::parse_from(argv).args;
    let reports = run(args.clone()).await.expect("run");
    assert!(finish(&args, &reports).expect("print"), "{reports:#?}");
    server.shutdown().await;
    reports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_storm_logs_everyone_in() {
    let reports = bench("w1 --quick --sessions 40 --rooms 4").await;
    assert_eq!(reports[0].get("sessions logged in"), Some(40.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_delivers_every_message() {
    let reports = bench("w2 --quick --sessions 20 --rates 20,40 --step-secs 0.5").await;
    let first = &reports[0].steps[0];
    assert_eq!(first.delivered, first.expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_loses_nothing() {
    let reports = bench("w4 --quick --sessions 40 --rooms 4").await;
    let r = &reports[0];
    assert_eq!(r.get("sessions back"), Some(40.0));
    assert_eq!(r.get("events lost"), Some(0.0));
    assert!(r.get("deliveries checked").unwrap_or(0.0) > 0.0);
}
