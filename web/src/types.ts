// Shapes of the API's answers, as far as the console reads them.

export type Permission =
  | "manage_tenants"
  | "manage_keys"
  | "read_data"
  | "write_data"
  | "train"
  | "deploy"
  | "read_models"
  | "infer"
  | "manage_library"
  | "read_audit"
  | "read_metrics";

export interface Me {
  key: {
    id: string;
    name: string;
    role: "admin" | "owner" | "developer" | "inference" | "metrics";
    tenant_id: string;
    allowed_models: string[] | null;
    expires_at: number | null;
  };
  tenant: Tenant;
  permissions: Permission[];
}

export interface ModelSummary {
  id: string;
  name: string;
  task: string;
  tenant_id: string;
  aliases: { alias: string; version: number }[];
  deployed_version: number | null;
  latest_version: number | null;
  loaded: boolean;
  created_at: number;
}

export interface Metrics {
  accuracy: number;
  macro_f1: number;
  macro_precision: number;
  macro_recall: number;
  labels: string[];
  confusion: number[][];
  per_class: { label: string; precision: number; recall: number; f1: number; support: number }[];
  samples: number;
}

export interface EpochPoint {
  epoch: number;
  seconds?: number;
  train_loss: number;
  train_accuracy: number;
  val_loss?: number | null;
  val_accuracy?: number | null;
}

export interface FeatureWeight {
  feature: string;
  weight: number;
}

export interface Candidate {
  architecture: string;
  /** tfidf-logreg: per class, the features weighing most toward and against it. */
  top_features?: { label: string; toward: FeatureWeight[]; against: FeatureWeight[] }[];
  curve: EpochPoint[];
  validation: Metrics | null;
  test: Metrics | null;
  train_seconds: number;
}

export interface TrainingReport {
  architecture: string;
  candidates: Candidate[];
  /** `auto`'s search: what it cost and what its time budget left out. */
  search?: {
    time_budget_secs: number | null;
    seconds: number;
    trials: number;
    skipped: number;
    cut_short: boolean;
    refit_skipped: boolean;
  };
  labels: string[];
  seconds: number;
  train_samples: number;
  validation_samples: number;
  test_samples: number;
  vocabulary: number;
}

export interface TensorSpec {
  name: string;
  datatype: string;
  dims: number[];
}

export interface ModelVersion {
  model_id: string;
  version: number;
  /** `aiaas-classifier` (trained here) or `onnx` (uploaded). */
  format: string;
  architecture: string;
  labels: string[];
  files: string[];
  report: TrainingReport | null;
  config: Record<string, unknown>;
  job_id: string | null;
  dataset_id: string | null;
  created_at: number;
}

export interface Deployment {
  model_id: string;
  version: number;
  max_batch: number;
  max_delay_ms: number;
  queue_capacity: number;
  pii_inputs: string | null;
  max_queue_time_ms: number;
  canary: {
    version: number;
    percent: number;
    auto_rollback: { max_error_rate_increase: number; window_secs: number; min_requests: number } | null;
    started_at: number;
  } | null;
  created_at: number;
  updated_at: number;
}

/** `GET /api/v1/models/{name}/events`. */
export interface ModelEvent {
  seq: number;
  at: number;
  kind: string;
  detail: Record<string, unknown>;
}

export interface ModelDetails {
  id: string;
  name: string;
  task: string;
  tenant_id: string;
  created_at: number;
  versions: ModelVersion[];
  aliases: { alias: string; version: number; updated_at: number }[];
  deployment: Deployment | null;
  loaded: boolean;
}

export interface LibraryModel {
  name: string;
  task: string;
  format: string;
  source: string;
  license: string;
  size_bytes: number;
  loaded: boolean;
  settings: Record<string, unknown>;
  created_at: number;
}

export interface Running {
  key: string;
  kind: string;
  label: string;
  memory_bytes: number;
  in_flight: number;
  idle_for: number;
  slots: number | null;
  slots_busy: number | null;
}

export interface Dataset {
  id: string;
  tenant_id: string;
  name: string;
  format: string;
  text_column: string;
  label_column: string;
  row_count: number;
  byte_count: number;
  created_at: number;
  stats: {
    rows: number;
    classes: number;
    columns: string[];
    class_balance: { label: string; count: number; fraction: number }[];
    text_chars?: Percentiles;
    text_tokens?: Percentiles;
    pii?: { mode: string; found: Record<string, number> };
  };
}

export interface Percentiles {
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface Job {
  id: string;
  tenant_id: string;
  model_name: string;
  dataset_id: string;
  config: Record<string, any>;
  deploy: boolean;
  status: JobStatus;
  cancel_requested: boolean;
  error: string | null;
  report: TrainingReport | null;
  model_version: number | null;
  attempts: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

export interface ApiKey {
  id: string;
  tenant_id: string;
  name: string;
  role: string;
  allowed_models: string[] | null;
  allowed_ips: string[] | null;
  expires_at: number | null;
  revoked_at: number | null;
  created_at: number;
  limits: Limits;
}

export interface Limits {
  requests_per_minute?: number | null;
  burst?: number | null;
  tokens_per_minute?: number | null;
  tokens_per_month?: number | null;
}

export interface Tenant {
  id: string;
  name: string;
  created_at: number;
  limits: Limits;
  pii_inputs: string | null;
  pii_outputs: string | null;
}
