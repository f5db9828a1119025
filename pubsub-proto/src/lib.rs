//! Salesforce's Pub/Sub API (`eventbus.v1.PubSub`, gRPC): the messages and the tonic client and
//! server generated from `proto/pubsub_api.proto` at build time (no `protoc`, see `build.rs`).
//! The client (`sfpg-salesforce`) and the emulator both use it, so they speak one wire format.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod eventbus {
    pub mod v1 {
        tonic::include_proto!("eventbus.v1");
    }
}

pub use eventbus::v1::*;

/// A replay id as Pub/Sub carries it: the bus position as 8 bytes, big-endian.
pub fn replay_id_bytes(position: i64) -> Vec<u8> {
    position.to_be_bytes().to_vec()
}

/// The bus position of an 8-byte big-endian replay id; `None` for any other length.
pub fn replay_id_position(bytes: &[u8]) -> Option<i64> {
    let array: [u8; 8] = bytes.try_into().ok()?;
    Some(i64::from_be_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_ids_are_eight_bytes_big_endian() {
        assert_eq!(replay_id_bytes(258), vec![0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(replay_id_position(&[0, 0, 0, 0, 0, 0, 1, 2]), Some(258));
        assert_eq!(replay_id_position(&[1, 2]), None);
    }

    #[test]
    fn messages_carry_the_documented_field_numbers() {
        use prost::Message;
        // FetchRequest{topic_name=1 "t", replay_preset=2 CUSTOM, replay_id=3 [7], num_requested=4 100}
        let request = FetchRequest {
            topic_name: "t".into(),
            replay_preset: ReplayPreset::Custom as i32,
            replay_id: vec![7],
            num_requested: 100,
            auth_refresh: String::new(),
        };
        let bytes = request.encode_to_vec();
        assert_eq!(bytes, vec![0x0a, 1, b't', 0x10, 2, 0x1a, 1, 7, 0x20, 100]);
    }
}
