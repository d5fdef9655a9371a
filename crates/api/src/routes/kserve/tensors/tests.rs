use super::*;

fn binary_body(head: &str, raw: &[u8]) -> (HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert(
        HEADER_LENGTH,
        HeaderValue::from_str(&head.len().to_string()).unwrap(),
    );
    let mut body = head.as_bytes().to_vec();
    body.extend_from_slice(raw);
    (headers, body)
}

fn bytes_raw(texts: &[&str]) -> Vec<u8> {
    let mut raw = Vec::new();
    for t in texts {
        raw.extend_from_slice(&(t.len() as u32).to_le_bytes());
        raw.extend_from_slice(t.as_bytes());
    }
    raw
}

#[test]
fn binary_bytes_inputs_decode() {
    let raw = bytes_raw(&["héllo", "world"]);
    let head = format!(
        r#"{{"inputs":[{{"name":"text","shape":[2],"datatype":"BYTES","parameters":{{"binary_data_size":{}}}}}],"outputs":[{{"name":"label","parameters":{{"binary_data":true}}}}]}}"#,
        raw.len()
    );
    let (headers, body) = binary_body(&head, &raw);
    let r = decode_request(&headers, &body).unwrap();
    assert_eq!(
        texts(r.inputs.into_iter().next().unwrap()).unwrap(),
        vec!["héllo", "world"]
    );
    let outputs = r.outputs.unwrap();
    assert_eq!(outputs.len(), 1);
    assert!(outputs[0].binary);
    let short = head.replace("[2]", "[3]");
    let (headers, body) = binary_body(&short, &raw);
    assert!(decode_request(&headers, &body)
        .unwrap_err()
        .contains("shape"));
    let (headers, mut body) = binary_body(&head, &raw);
    body.truncate(body.len() - 1);
    assert!(decode_request(&headers, &body).is_err());
}

#[test]
fn every_datatype_decodes_from_binary_in_order() {
    let mut raw = Vec::new();
    raw.extend_from_slice(&[1, 0]);
    for v in [1.5f32, -2.0] {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    for v in [-3i64, 4] {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0.5f64, 8.0] {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    for v in [f16::from_f32(0.25), f16::from_f32(-1.0)] {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    let head = r#"{"inputs":[
        {"name":"b","shape":[2],"datatype":"BOOL","parameters":{"binary_data_size":2}},
        {"name":"f","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}},
        {"name":"i","shape":[2],"datatype":"INT64","parameters":{"binary_data_size":16}},
        {"name":"d","shape":[2],"datatype":"FP64","parameters":{"binary_data_size":16}},
        {"name":"h","shape":[2],"datatype":"FP16","parameters":{"binary_data_size":4}}]}"#;
    let (headers, body) = binary_body(head, &raw);
    let r = decode_request(&headers, &body).unwrap();
    let data: Vec<&TensorData> = r.inputs.iter().map(|t| &t.data).collect();
    assert_eq!(data[0], &TensorData::Bool(vec![true, false]));
    assert_eq!(data[1], &TensorData::Fp32(vec![1.5, -2.0]));
    assert_eq!(data[2], &TensorData::Int64(vec![-3, 4]));
    assert_eq!(data[3], &TensorData::Fp64(vec![0.5, 8.0]));
    assert_eq!(
        data[4],
        &TensorData::Fp16(vec![f16::from_f32(0.25), f16::from_f32(-1.0)])
    );
    assert_eq!(r.inputs[1].shape, vec![1, 2]);
    // Bytes left over, and a size that is not whole elements, are errors.
    let (headers, mut body) = binary_body(head, &raw);
    body.push(0);
    assert!(decode_request(&headers, &body)
        .unwrap_err()
        .contains("1 bytes of binary data follow"));
    let odd = head.replace(r#""binary_data_size":8"#, r#""binary_data_size":7"#);
    let (headers, body) = binary_body(&odd, &raw);
    assert!(decode_request(&headers, &body)
        .unwrap_err()
        .contains("whole number"));
}

#[test]
fn json_inputs_follow_the_declared_shape_and_type() {
    let h = HeaderMap::new();
    let ok = decode_request(
        &h,
        br#"{"inputs":[{"name":"t","shape":[2,1],"datatype":"BYTES","data":[["a"],["b"]]},
                       {"name":"u","shape":[3],"datatype":"UINT8","data":[0, 7, 255]},
                       {"name":"x","shape":[2],"datatype":"FP32","data":[1, 2.5]}]}"#,
    )
    .unwrap();
    assert_eq!(ok.inputs[1].data, TensorData::Uint8(vec![0, 7, 255]));
    assert_eq!(ok.inputs[2].data, TensorData::Fp32(vec![1.0, 2.5]));
    assert!(ok.outputs.is_none());
    let cases: [(&[u8], &str); 7] = [
        (
            br#"{"inputs":[{"name":"t","shape":[3],"datatype":"BYTES","data":["a"]}]}"#,
            "shape",
        ),
        (
            br#"{"inputs":[{"name":"u","shape":[1],"datatype":"UINT8","data":[256]}]}"#,
            "input \"u\": element 0 (256) is not a UINT8",
        ),
        (
            br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["1"]}]}"#,
            "not a number",
        ),
        (
            br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FLOAT","data":[1]}]}"#,
            "datatype \"FLOAT\"",
        ),
        (br#"{"inputs":[]}"#, "no inputs"),
        (
            br#"{"inputs":[{"name":"t","shape":[4294967296,4294967296,4294967296],"datatype":"BYTES","data":["a"]}]}"#,
            "too large",
        ),
        (
            br#"{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"]}],"outputs":[{"name":"p","parameters":{"classification":0}}]}"#,
            "classification",
        ),
    ];
    for (body, want) in cases {
        let e = decode_request(&h, body).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn classification_gives_the_top_classes_with_labels() {
    let t = Tensor::new(
        "p",
        vec![2, 3],
        TensorData::Fp32(vec![0.1, 0.7, 0.2, 0.5, 0.2, 0.3]),
    );
    let labels = vec!["a".to_string(), "b".into(), "c".into()];
    let top = classify(&t, 2, Some(&labels)).unwrap();
    assert_eq!(top.shape, vec![2, 2]);
    let TensorData::Bytes(items) = &top.data else {
        panic!("BYTES expected")
    };
    let items: Vec<String> = items
        .iter()
        .map(|b| String::from_utf8(b.clone()).unwrap())
        .collect();
    assert_eq!(items, vec!["0.7:1:b", "0.2:2:c", "0.5:0:a", "0.3:2:c"]);
    let unlabelled = classify(&t, 1, None).unwrap();
    assert_eq!(
        unlabelled.data,
        TensorData::Bytes(vec![b"0.7:1".to_vec(), b"0.5:0".to_vec()])
    );
    let text = Tensor::new("s", vec![1], TensorData::Bytes(vec![b"x".to_vec()]));
    assert!(classify(&text, 1, None).is_err());
}

#[tokio::test]
async fn binary_outputs_encode_after_the_json_header() {
    let r = encode_response(
        "m",
        "1",
        Some("r"),
        vec![
            (
                Tensor::new("label", vec![1], TensorData::Bytes(vec![b"ab".to_vec()])),
                true,
            ),
            (
                Tensor::new(
                    "probabilities",
                    vec![1, 2],
                    TensorData::Fp32(vec![0.25, 0.75]),
                ),
                false,
            ),
            (
                Tensor::new("flags", vec![2], TensorData::Bool(vec![true, false])),
                true,
            ),
        ],
    );
    let len: usize = r.headers()[HEADER_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    assert_eq!(r.headers()["x-aiaas-model-version"], "1");
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let head: Value = serde_json::from_slice(&body[..len]).unwrap();
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 6);
    assert_eq!(head["outputs"][1]["data"], json!([0.25, 0.75]));
    assert_eq!(head["outputs"][2]["datatype"], "BOOL");
    assert_eq!(&body[len..], &[2, 0, 0, 0, b'a', b'b', 1, 0]);
}
