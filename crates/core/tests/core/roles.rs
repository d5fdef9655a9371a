//! Roles are enforced in the core; unknown keys are refused; shutdown completes.

use aiaas_core::{CoreError, DeployRequest, JobStatus};
use aiaas_types::Role;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_enforced_in_the_core() {
    let w = World::start().await;
    let a = &w.acme;
    let data = upload(&w.platform, &a.developer, "data", &topic_csv(&TOPICS, 30)).await;
    let job = w
        .platform
        .jobs()
        .submit(&a.developer, train_request(&data.id, "clf"))
        .await
        .unwrap();
    wait_for_job(&w.platform, &a.developer, &job.id).await;

    // Inference keys call models and nothing else.
    let inf = &a.inference;
    forbidden(
        "begin_upload",
        w.platform.datasets().begin_upload(inf).await.map(|_| ()),
    );
    forbidden(
        "submit_job",
        w.platform
            .jobs()
            .submit(inf, train_request(&data.id, "clf"))
            .await,
    );
    forbidden(
        "deploy",
        w.platform
            .models()
            .deploy(inf, "clf", DeployRequest::default())
            .await,
    );
    forbidden(
        "set_alias",
        w.platform.models().set_alias(inf, "clf", "prod", 1).await,
    );
    forbidden("delete_model", w.platform.models().delete(inf, "clf").await);
    forbidden("list_datasets", w.platform.datasets().list(inf).await);
    forbidden(
        "get_dataset",
        w.platform.datasets().get(inf, &data.id).await,
    );
    forbidden(
        "delete_dataset",
        w.platform.datasets().delete(inf, &data.id).await,
    );
    forbidden("cancel_job", w.platform.jobs().cancel(inf, &job.id).await);
    forbidden(
        "create_key",
        w.platform
            .accounts()
            .create_key(inf, new_key(None, Role::Inference))
            .await,
    );
    assert_eq!(
        w.platform
            .models()
            .get(inf, "clf")
            .await
            .unwrap()
            .versions
            .len(),
        1
    );
    assert!(w
        .platform
        .models()
        .get(&a.developer, "clf")
        .await
        .unwrap()
        .deployment
        .is_none());

    // Developers work with data and models but do not manage keys or tenants.
    let dev = &a.developer;
    forbidden(
        "create_key",
        w.platform
            .accounts()
            .create_key(dev, new_key(None, Role::Inference))
            .await,
    );
    forbidden("list_keys", w.platform.accounts().list_keys(dev).await);
    forbidden(
        "revoke_key",
        w.platform
            .accounts()
            .revoke_key(dev, &a.inference_key.key.id)
            .await,
    );
    forbidden(
        "create_tenant",
        w.platform.accounts().create_tenant(dev, "newco").await,
    );
    w.platform
        .accounts()
        .authenticate(a.inference_key.secret.expose())
        .await
        .unwrap();

    // A deploy-on-success job needs Deploy as well as Train; developers have both.
    let mut deploying = train_request(&data.id, "clf");
    deploying.deploy = true;
    forbidden(
        "submit_job (deploy)",
        w.platform.jobs().submit(inf, deploying.clone()).await,
    );
    let job = w.platform.jobs().submit(dev, deploying).await.unwrap();
    assert_eq!(
        wait_for_job(&w.platform, dev, &job.id).await.status,
        JobStatus::Succeeded
    );
    let details = w.platform.models().get(dev, "clf").await.unwrap();
    assert_eq!(details.deployment.map(|d| d.version), Some(2));

    // Owners manage their tenant's keys, but not tenants, and mint no key above their own.
    let owner = &a.owner;
    forbidden(
        "create_tenant",
        w.platform.accounts().create_tenant(owner, "newco").await,
    );
    forbidden(
        "list_tenants",
        w.platform.accounts().list_tenants(owner).await,
    );
    forbidden(
        "create_key (admin)",
        w.platform
            .accounts()
            .create_key(owner, new_key(None, Role::Admin))
            .await,
    );
    let tenant_admin = w
        .platform
        .accounts()
        .create_key(&w.admin, new_key(Some("acme"), Role::Admin))
        .await
        .unwrap();
    forbidden(
        "revoke_key (admin)",
        w.platform
            .accounts()
            .revoke_key(owner, &tenant_admin.key.id)
            .await,
    );
    w.platform
        .accounts()
        .authenticate(tenant_admin.secret.expose())
        .await
        .unwrap();
    let names: Vec<String> = w
        .platform
        .accounts()
        .list_tenants(&w.admin)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(!names.contains(&"newco".to_string()), "{names:?}");

    // An owner's revocation takes effect at once.
    let extra = w
        .platform
        .accounts()
        .create_key(owner, new_key(None, Role::Developer))
        .await
        .unwrap();
    w.platform
        .accounts()
        .authenticate(extra.secret.expose())
        .await
        .unwrap();
    let revoked = w
        .platform
        .accounts()
        .revoke_key(owner, &extra.key.id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(matches!(
        w.platform
            .accounts()
            .authenticate(extra.secret.expose())
            .await,
        Err(CoreError::Unauthenticated(_))
    ));

    // Allow-lists restrict inference keys to the named models.
    let mut narrow = new_key(None, Role::Inference);
    narrow.allowed_models = Some(vec!["other".into()]);
    let narrow = w
        .platform
        .accounts()
        .create_key(owner, narrow)
        .await
        .unwrap();
    let narrow = w
        .platform
        .accounts()
        .authenticate(narrow.secret.expose())
        .await
        .unwrap();
    forbidden(
        "predict (allow-list)",
        w.platform
            .models()
            .predict(&narrow, "clf", vec!["goal".into()])
            .await,
    );
    assert_eq!(
        w.platform
            .models()
            .predict(inf, "clf", vec!["goal".into()])
            .await
            .unwrap()
            .version,
        2
    );

    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_are_unauthenticated_and_shutdown_completes() {
    let w = World::start().await;
    let unknown = format!("aiaas_{}", "f".repeat(64));
    for secret in ["", "Bearer x", "aiaas_short", unknown.as_str()] {
        assert!(
            matches!(
                w.platform.accounts().authenticate(secret).await,
                Err(CoreError::Unauthenticated(_))
            ),
            "{secret:?}"
        );
    }
    w.platform.ready().await.unwrap();
    let platform = w.platform.clone();
    w.shutdown().await;
    assert!(matches!(
        platform.ready().await,
        Err(CoreError::Unavailable(_))
    ));
}

// ---- fixture ----
