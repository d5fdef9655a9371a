//! Time `OnnxModel::run` on a test model (bench/onnx/compute.py runs it beside Python's
//! onnxruntime on the same library, model, rows and threads, and prints the ratio).
//!
//! `onnx_run LIBONNXRUNTIME MODEL.onnx REFERENCE.json BATCH ITERATIONS THREADS`
//! prints one JSON line: the median and mean microseconds of one run. REFERENCE.json has
//! the `input` name and `rows`, and `row_shape` when a row is a flattened tensor.

use std::time::Instant;

use aiaas_onnx::{OnnxModel, Runtime, Tensor, TensorData};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [lib, model, reference, batch, iterations, threads] = &args[..] else {
        panic!("usage: onnx_run LIBONNXRUNTIME MODEL.onnx REFERENCE.json BATCH ITERATIONS THREADS");
    };
    let (batch, iterations, threads): (usize, usize, usize) = (
        batch.parse().unwrap(),
        iterations.parse().unwrap(),
        threads.parse().unwrap(),
    );
    let runtime = Runtime::load(lib.as_ref()).unwrap();
    let model = OnnxModel::load(runtime, &std::fs::read(model).unwrap(), threads).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reference).unwrap()).unwrap();
    let rows: Vec<Vec<f32>> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let flat: Vec<f32> = (0..batch)
        .flat_map(|i| rows[i % rows.len()].clone())
        .collect();
    // A row is a vector, or (`row_shape`) a flattened tensor such as an image.
    let mut shape = vec![batch];
    match json["row_shape"].as_array() {
        Some(dims) => shape.extend(dims.iter().map(|d| d.as_u64().unwrap() as usize)),
        None => shape.push(rows[0].len()),
    }
    let name = json["input"].as_str().unwrap();
    let input = Tensor::new(name, shape, TensorData::Fp32(flat));
    for _ in 0..iterations / 10 + 1 {
        model.run(vec![input.clone()], None).unwrap();
    }
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        model.run(vec![input.clone()], None).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    println!("{{\"median_us\": {median:.2}, \"mean_us\": {mean:.2}}}");
}
