//! Canary releases on the real ONNX Runtime: the iris pipeline as the stable version and
//! `iris_flaky.onnx` (built by `scripts/setup.sh --test`: the same input, failing on any
//! row whose fourth feature is 10 or more) as the canary. The split over 400 requests,
//! the automatic rollback within one window once the canary starts failing, its reason in
//! the model's events and the tenant's audit log, promotion and rollback by hand.

use std::time::{Duration, Instant};

use aiaas_core::onnx::{Tensor, TensorData};
use aiaas_core::{AuditQuery, AutoRollback, CanaryRequest, CoreError, DeployRequest};

use crate::support::World;
use crate::tensor_models::{reference, test_data, world};

fn flaky_bytes() -> Vec<u8> {
    let path = test_data().join("onnx").join("iris_flaky.onnx");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh --test)", path.display()))
}

/// One iris row; `petal_width` 10 or more makes the flaky version fail.
fn row(petal_width: f32) -> Tensor {
    Tensor::new(
        "X".to_string(),
        vec![1, 4],
        TensorData::Fp32(vec![5.1, 3.5, 1.4, petal_width]),
    )
}

fn probabilities() -> Option<Vec<String>> {
    Some(vec!["output_probability".into()])
}

/// `iris` with the pipeline as version 1 and the flaky graph as version 2.
async fn two_versions(w: &World) {
    let models = w.platform.models();
    let dev = &w.acme.developer;
    let iris = reference("iris_pipeline");
    models
        .upload_onnx(dev, "iris", iris.bytes, None)
        .await
        .unwrap();
    let v2 = models
        .upload_onnx(dev, "iris", flaky_bytes(), None)
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_takes_its_share_and_rolls_back_by_itself_when_it_fails() {
    let w = world().await;
    two_versions(&w).await;
    let models = w.platform.models();
    let dev = &w.acme.developer;
    let rule = AutoRollback {
        max_error_rate_increase: 0.05,
        window_secs: 30,
        min_requests: 20,
    };
    let deployed = models
        .deploy(
            dev,
            "iris",
            DeployRequest {
                version: Some(1),
                canary: Some(CanaryRequest {
                    version: 2,
                    percent: 25,
                    auto_rollback: Some(rule),
                }),
                ..DeployRequest::default()
            },
        )
        .await
        .unwrap();
    let canary = deployed.canary.clone().unwrap();
    assert_eq!(
        (deployed.version, canary.version, canary.percent),
        (1, 2, 25)
    );

    // Healthy traffic: 400 requests, a quarter answered by the canary, none failing.
    let mut by_canary = 0;
    for _ in 0..400 {
        let a = models
            .infer_tensors(dev, "iris", vec![row(0.2)], probabilities())
            .await
            .unwrap();
        if a.version == 2 {
            by_canary += 1;
        }
    }
    assert!(
        (by_canary as i64 - 100).abs() <= 20,
        "the canary answered {by_canary} of 400 requests at 25%"
    );
    let metrics = w.platform.render_metrics();
    let canary_ok = metrics
        .lines()
        .find(|l| {
            l.starts_with("aiaas_model_requests_total")
                && l.contains("track=\"canary\"")
                && l.contains("version=\"2\"")
                && l.contains("outcome=\"ok\"")
        })
        .unwrap_or_else(|| panic!("no canary count in:\n{metrics}"));
    assert!(canary_ok.ends_with(&format!(" {by_canary}")), "{canary_ok}");
    let d = models.get(dev, "iris").await.unwrap().deployment.unwrap();
    assert!(d.canary.is_some(), "rolled back while healthy");

    // The canary starts failing: every request whose fourth feature is 50 fails there
    // (500), while the stable version answers it.
    let mut first_failure: Option<Instant> = None;
    let mut rolled_back_after = None;
    for _ in 0..2000 {
        match models
            .infer_tensors(dev, "iris", vec![row(50.0)], probabilities())
            .await
        {
            Ok(a) => assert_eq!(a.version, 1),
            Err(CoreError::Internal(m)) => {
                assert!(m.contains("inference failed"), "{m}");
                first_failure.get_or_insert_with(Instant::now);
            }
            Err(e) => panic!("unexpected error: {e:?}"),
        }
        let d = models.get(dev, "iris").await.unwrap().deployment.unwrap();
        if d.canary.is_none() {
            rolled_back_after = first_failure.map(|t| t.elapsed());
            assert_eq!(d.version, 1);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = rolled_back_after.expect("the failing canary was never rolled back");
    assert!(
        took < Duration::from_secs(rule.window_secs as u64),
        "rolled back {took:?} after the first failure"
    );
    // All traffic is the stable version's again, failing rows included.
    for _ in 0..20 {
        let a = models
            .infer_tensors(dev, "iris", vec![row(50.0)], probabilities())
            .await
            .unwrap();
        assert_eq!(a.version, 1);
    }

    // Why, in the model's events and the tenant's audit log (written by the rollback's
    // task just after the deployment row changes: waited for).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let audited = w
            .platform
            .audit_log()
            .entries(
                &w.acme.owner,
                AuditQuery {
                    action: Some("models.auto_rollback".into()),
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        if !audited.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = models.events(dev, "iris", 10).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["canary.auto_rollback", "canary.start", "deploy"]);
    let why = &events[0].detail;
    assert_eq!(
        (
            why["canary_version"].as_i64(),
            why["stable_version"].as_i64()
        ),
        (Some(2), Some(1))
    );
    assert!(why["canary_error_rate"].as_f64().unwrap() > 0.05, "{why}");
    assert_eq!(why["stable_error_rate"].as_f64(), Some(0.0));
    assert!(why["reason"]
        .as_str()
        .unwrap()
        .contains("canary version 2 failed"));
    let audit = w
        .platform
        .audit_log()
        .entries(
            &w.acme.owner,
            AuditQuery {
                action: Some("models.auto_rollback".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].role.as_deref(), Some("system"));
    assert_eq!(audit[0].target.as_deref(), Some("/api/v1/models/iris"));
    assert!(audit[0].detail.contains("canary_error_rate"));
    // Not the rival tenant's business.
    let theirs = w
        .platform
        .audit_log()
        .entries(
            &w.rival.owner,
            AuditQuery {
                action: Some("models.auto_rollback".into()),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(theirs.is_empty());
    w.shutdown().await;
}

#[tokio::test]
async fn promote_and_rollback_are_one_call_each() {
    let w = world().await;
    two_versions(&w).await;
    let models = w.platform.models();
    let dev = &w.acme.developer;
    let canary = |version, percent| DeployRequest {
        version: Some(if version == 1 { 2 } else { 1 }),
        canary: Some(CanaryRequest {
            version,
            percent,
            auto_rollback: None,
        }),
        ..DeployRequest::default()
    };

    // Refused: the stable version as its own canary, a share past 100, no such version,
    // a bad rule; and nothing deployed by any of them.
    for (req, want) in [
        (
            DeployRequest {
                version: Some(1),
                ..canary(1, 10)
            },
            "another version",
        ),
        (canary(2, 101), "0-100"),
        (canary(7, 10), "no version 7"),
        (
            DeployRequest {
                version: Some(1),
                canary: Some(CanaryRequest {
                    version: 2,
                    percent: 10,
                    auto_rollback: Some(AutoRollback {
                        max_error_rate_increase: 0.1,
                        window_secs: 0,
                        min_requests: 10,
                    }),
                }),
                ..DeployRequest::default()
            },
            "window_secs",
        ),
    ] {
        let e = models.deploy(dev, "iris", req).await.unwrap_err();
        assert!(e.to_string().contains(want), "{e} (wanted {want:?})");
    }
    assert!(models.get(dev, "iris").await.unwrap().deployment.is_none());
    assert!(matches!(
        models.promote(dev, "iris").await,
        Err(CoreError::Conflict(_))
    ));

    // Promote: the canary becomes the deployed version.
    models.deploy(dev, "iris", canary(2, 50)).await.unwrap();
    let d = models.promote(dev, "iris").await.unwrap();
    assert_eq!((d.version, d.canary), (2, None));
    let e = models.promote(dev, "iris").await.unwrap_err();
    assert!(
        matches!(&e, CoreError::Conflict(m) if m.contains("no canary")),
        "{e:?}"
    );
    let a = models
        .infer_tensors(dev, "iris", vec![row(0.2)], probabilities())
        .await
        .unwrap();
    assert_eq!(a.version, 2);

    // Rollback: the stable version takes everything back.
    models.deploy(dev, "iris", canary(1, 100)).await.unwrap();
    let a = models
        .infer_tensors(dev, "iris", vec![row(0.2)], probabilities())
        .await
        .unwrap();
    assert_eq!(a.version, 1, "a 100% canary answers everything");
    let d = models.rollback(dev, "iris").await.unwrap();
    assert_eq!((d.version, d.canary), (2, None));
    for _ in 0..5 {
        let a = models
            .infer_tensors(dev, "iris", vec![row(0.2)], probabilities())
            .await
            .unwrap();
        assert_eq!(a.version, 2);
    }
    // A deploy without a canary ends one.
    models.deploy(dev, "iris", canary(1, 30)).await.unwrap();
    let d = models
        .deploy(
            dev,
            "iris",
            DeployRequest {
                version: Some(2),
                ..DeployRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(d.canary, None);

    let kinds: Vec<String> = models
        .events(dev, "iris", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "deploy",
            "canary.start",
            "deploy",
            "canary.rollback",
            "canary.start",
            "deploy",
            "canary.promote",
            "canary.start",
            "deploy",
        ]
    );

    // Roles and tenants: inference keys cannot end a canary; another tenant sees no model.
    models.deploy(dev, "iris", canary(1, 30)).await.unwrap();
    assert!(matches!(
        models.rollback(&w.acme.inference, "iris").await,
        Err(CoreError::Forbidden(_))
    ));
    assert!(matches!(
        models.promote(&w.rival.owner, "iris").await,
        Err(CoreError::NotFound(_))
    ));
    assert!(matches!(
        models.events(&w.rival.owner, "iris", 10).await,
        Err(CoreError::NotFound(_))
    ));
    assert!(models
        .get(dev, "iris")
        .await
        .unwrap()
        .deployment
        .unwrap()
        .canary
        .is_some());
    w.shutdown().await;
}
