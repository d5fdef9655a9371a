//! An S3-compatible server for benchmarks and local trials (never production):
//!
//!   aiaas-s3-dev ROOT [LISTEN] [BUCKET]     (default 127.0.0.1:9000, bucket aiaas)
//!
//! Prints `endpoint http://HOST:PORT` once it listens, then serves until killed. The
//! access key and secret are fixed: AWS_ACCESS_KEY_ID=AKIAAIAASTEST0000000,
//! AWS_SECRET_ACCESS_KEY=aiaas/test+secret/key0000000000000000000.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(root) = args.next() else {
        eprintln!("usage: aiaas-s3-dev ROOT [LISTEN] [BUCKET]");
        std::process::exit(2);
    };
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let bucket = args.next().unwrap_or_else(|| "aiaas".into());
    match aiaas_testkit::S3Server::start_at(std::path::Path::new(&root), &listen, &bucket) {
        Ok(server) => {
            println!("endpoint {}", server.endpoint);
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("aiaas-s3-dev: cannot serve {root} on {listen}: {e}");
            std::process::exit(1);
        }
    }
}
