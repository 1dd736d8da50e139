use apache_avro::{AvroSchema, Schema};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, PartialEq, Serialize, Deserialize, AvroSchema, Clone)]
enum Color {
    Red,
    Green,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, AvroSchema, Clone)]
#[avro(namespace = "com.acme")]
struct All {
    /// doc here
    #[avro(with = null_schema)]
    n: (),
    b: bool,
    i: i32,
    l: i64,
    f: f32,
    d: f64,
    #[avro(with)]
    #[serde(with = "apache_avro::serde::bytes")]
    by: Vec<u8>,
    s: String,
    c: Color,
    a: Vec<i64>,
    m: HashMap<String, String>,
    o: Option<i64>,
    #[avro(with = apache_avro::serde::fixed::get_schema_in_ctxt::<4>)]
    #[serde(with = "apache_avro::serde::fixed")]
    fx: [u8; 4],
    u: apache_avro::Uuid,
}

fn null_schema(
    _: &mut std::collections::HashSet<apache_avro::schema::Name>,
    _: apache_avro::schema::NamespaceRef,
) -> Schema {
    Schema::Null
}

#[ouroboros::self_referencing]
struct Owned {
    schema: Schema,
    #[borrows(schema)]
    #[covariant]
    res: apache_avro::schema::ResolvedSchema<'this>,
}

#[test]
fn probe() {
    let schema = All::get_schema();
    println!("JSON: {}", serde_json::to_string(&schema).unwrap());
    let v = All {
        n: (),
        b: true,
        i: -3,
        l: 1 << 40,
        f: 1.5,
        d: 2.25,
        by: vec![1, 2],
        s: "x".into(),
        c: Color::Green,
        a: vec![1, 2],
        m: [("k".to_string(), "v".to_string())].into(),
        o: Some(5),
        fx: [1, 2, 3, 4],
        u: apache_avro::Uuid::from_u128(7),
    };
    let r = OwnedTryBuilder {
        schema: schema.clone(),
        res_builder: |s: &Schema| apache_avro::schema::ResolvedSchema::try_from(s),
    }
    .try_build()
    .unwrap();
    let mut buf = Vec::new();
    apache_avro::write_avro_datum_ref(r.borrow_schema(), r.borrow_res().get_names(), &v, &mut buf)
        .unwrap();
    println!("{:?}", buf);
    let rd = apache_avro::reader::datum::SpecificDatumReader::<All>::builder()
        .build()
        .unwrap();
    let back = rd.read(&mut &buf[..]).unwrap();
    assert_eq!(back, v);
    let val = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .reader_schema(&schema)
        .build()
        .unwrap()
        .read_value(&mut &buf[..])
        .unwrap();
    println!("{val:?}");
    let back2: All = apache_avro::from_value(&val).unwrap();
    assert_eq!(back2, v);
    let (main, list) = Schema::parse_str_with_list(r#"{"type":"record","name":"P","namespace":"x","fields":[{"name":"a","type":"com.acme.Addr"},{"name":"b","type":"com.acme.Addr"}]}"#, [r#"{"type":"record","name":"Addr","namespace":"com.acme","fields":[{"name":"street","type":"string"}]}"#]).unwrap();
    println!("{main:?}\n{list:?}");
    // truncated
    let e = rd.read(&mut &buf[..buf.len() - 3]).unwrap_err();
    println!("trunc err: {e}");
    let e = rd.read(&mut &[0xffu8; 3][..]).unwrap_err();
    println!("garbage err: {e}");
}
