//! Encodes a published message, decodes it back, and names the gRPC method path a client
//! calls, with nothing but the generated code.
//!
//! ```text
//! cargo run -p manta-proto --example round_trip
//! ```

use manta_proto::common::permissions::UserPermission;
use manta_proto::common::system::StrId;
use prost::Message as _;

fn main() -> Result<(), prost::DecodeError> {
    let id = StrId {
        id: "cluster-1".to_owned(),
    };
    let bytes = id.encode_to_vec();
    let back = StrId::decode(bytes.as_slice())?;
    assert_eq!(back, id);
    println!("StrId {:?} is {} bytes on the wire", back.id, bytes.len());
    println!(
        "permission 11 is {}",
        UserPermission::try_from(11).map_or("unknown", |p| p.as_str_name())
    );
    println!(
        "{} descriptor bytes for server reflection",
        manta_proto::FILE_DESCRIPTOR_SET.len()
    );
    Ok(())
}
