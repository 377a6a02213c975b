//! Calling any unary node procedure by name with a JSON request, for `gnt rpc call`: the
//! request is parsed against the procedure's input type from the protocol's own descriptor
//! set (the proto3 JSON mapping), sent as raw bytes, and the answer rendered back as JSON.
//! No code per procedure: a procedure added to `gnt.node.v1.NodeAgent` is callable at once.

use crate::channels::NodeChannel;
use bytes::{Buf, BufMut, Bytes};
use gnt_core::error::{Classify, ErrorKind};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The service whose procedures can be called.
pub const NODE_SERVICE: &str = "gnt.node.v1.NodeAgent";

/// The procedures that only read the node's state: `gnt rpc call` runs them as asked.
const READ_ONLY: &[&str] = &[
    "Version",
    "NodeInfo",
    "HasIpAddress",
    "TcpPing",
    "NetworkTest",
    "ReadMasterCopy",
];

/// What a procedure that changes or destroys node state does, in the words of the
/// confirmation `gnt rpc call` asks for. A procedure in neither this table nor
/// [`READ_ONLY`] is taken as changing state (a test keeps both tables complete), so that a
/// new procedure is never run on every node unasked.
const EFFECTS: &[(&str, &str)] = &[
    (
        "LeaveCluster",
        "wipe the cluster state (ssconf, keys, certificates) and return to bootstrap mode",
    ),
    ("WriteSsconf", "replace the ssconf set"),
    ("UploadFile", "replace a file"),
    ("WriteMasterCopy", "replace the master copy"),
    ("DropMasterCopy", "delete the master copy"),
    ("ActivateMasterIp", "configure the cluster IP"),
    ("DeactivateMasterIp", "remove the cluster IP"),
    (
        "ChangeMasterNetmask",
        "change the netmask of the cluster IP",
    ),
    ("PrepareNodeKey", "generate a new node key"),
    (
        "InstallNodeCertificate",
        "install a new node certificate and destroy the old key",
    ),
    ("WriteTrust", "replace the trusted CAs"),
];

/// What procedure `name` would do to each node it is called on, when it changes or
/// destroys node state; `None` for a procedure that only reads.
pub fn effect(name: &str) -> Option<&'static str> {
    if READ_ONLY.contains(&name) {
        return None;
    }
    Some(
        EFFECTS
            .iter()
            .find(|(procedure, _)| *procedure == name)
            .map_or("change its state", |(_, effect)| effect),
    )
}

/// A procedure that cannot be called as asked.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProcedureError {
    /// No such procedure.
    #[error("no procedure '{name}' in {NODE_SERVICE}; available: {available}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The procedures there are.
        available: String,
    },
    /// A streaming procedure.
    #[error("{0} is a streaming procedure; gnt rpc call calls unary procedures only")]
    Streaming(String),
    /// The JSON does not fit the request type.
    #[error("the request is not a valid {message} in JSON: {reason}")]
    BadRequest {
        /// The request type.
        message: String,
        /// What the parser said.
        reason: String,
    },
    /// The descriptor set is unusable (a build defect).
    #[error("the protocol descriptors are unusable: {0}")]
    Descriptors(String),
}

impl Classify for ProcedureError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unknown { .. } => ErrorKind::UnknownEntity,
            Self::Streaming(_) | Self::BadRequest { .. } => ErrorKind::WrongInput,
            Self::Descriptors(_) => ErrorKind::Internal,
        }
    }
}

/// A unary node procedure and its request, ready to send.
#[derive(Debug, Clone)]
pub struct PreparedCall {
    method: MethodDescriptor,
    path: tonic::codegen::http::uri::PathAndQuery,
    request: Bytes,
}

impl PreparedCall {
    /// Looks `name` up and encodes `request_json` (empty: the default message).
    pub fn new(name: &str, request_json: &str) -> Result<Self, ProcedureError> {
        let pool = DescriptorPool::decode(gnt_proto::FILE_DESCRIPTOR_SET)
            .map_err(|e| ProcedureError::Descriptors(e.to_string()))?;
        let service = pool
            .get_service_by_name(NODE_SERVICE)
            .ok_or_else(|| ProcedureError::Descriptors(format!("{NODE_SERVICE} is missing")))?;
        let method = service
            .methods()
            .find(|m| m.name() == name)
            .ok_or_else(|| ProcedureError::Unknown {
                name: name.to_owned(),
                available: service
                    .methods()
                    .map(|m| m.name().to_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        if method.is_client_streaming() || method.is_server_streaming() {
            return Err(ProcedureError::Streaming(name.to_owned()));
        }
        let input = method.input();
        let message = if request_json.trim().is_empty() {
            DynamicMessage::new(input)
        } else {
            let mut deserializer = serde_json::Deserializer::from_str(request_json);
            DynamicMessage::deserialize(input.clone(), &mut deserializer)
                .and_then(|m| deserializer.end().map(|()| m))
                .map_err(|e| ProcedureError::BadRequest {
                    message: input.full_name().to_owned(),
                    reason: e.to_string(),
                })?
        };
        let path = format!("/{NODE_SERVICE}/{name}").parse().map_err(
            |e: tonic::codegen::http::uri::InvalidUri| ProcedureError::Descriptors(e.to_string()),
        )?;
        Ok(Self {
            method,
            path,
            request: message.encode_to_vec().into(),
        })
    }

    /// The procedure's name.
    pub fn name(&self) -> &str {
        self.method.name()
    }

    /// Sends it on `channel` with `timeout`, returning the answer as JSON.
    pub async fn call(
        &self,
        channel: NodeChannel,
        timeout: std::time::Duration,
    ) -> Result<String, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("not ready: {e}")))?;
        let mut request = tonic::Request::new(self.request.clone());
        request.set_timeout(timeout);
        let answer = grpc
            .unary(request, self.path.clone(), RawCodec)
            .await?
            .into_inner();
        let message = DynamicMessage::decode(self.method.output(), answer)
            .map_err(|e| tonic::Status::internal(format!("the answer does not decode: {e}")))?;
        render(&message)
            .map_err(|e| tonic::Status::internal(format!("the answer does not render: {e}")))
    }
}

/// An answer in the proto3 JSON mapping, which leaves out fields that hold their default
/// value; but an answer that would then be `{}` is written with them: `HasIpAddress`'s
/// "not owned" as `{"owned":false}`, which says what it means. Only then: in a fuller
/// answer a default often means "not asked" (`Version`'s `masterDaemonRunning` without
/// `masterRole`), and printing it would say something false.
fn render(message: &DynamicMessage) -> Result<String, serde_json::Error> {
    let compact = serde_json::to_string(message)?;
    if compact != "{}" {
        return Ok(compact);
    }
    let options = prost_reflect::SerializeOptions::new().skip_default_fields(false);
    let mut json = serde_json::Serializer::new(Vec::new());
    message.serialize_with_options(&mut json, &options)?;
    // serde_json writes UTF-8 only.
    Ok(String::from_utf8_lossy(&json.into_inner()).into_owned())
}

/// A codec that passes encoded messages through unchanged.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    /// Small, as the generated services' (`gnt_proto::codec` says why).
    fn buffer_settings(&self) -> BufferSettings {
        gnt_proto::codec::buffer_settings()
    }

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    /// Small, as the generated services' (`gnt_proto::codec` says why).
    fn buffer_settings(&self) -> BufferSettings {
        gnt_proto::codec::buffer_settings()
    }

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Self::Error> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_show_their_default_fields() {
        let pool = DescriptorPool::decode(gnt_proto::FILE_DESCRIPTOR_SET).unwrap();
        let answer = |name: &str| {
            let output = pool
                .get_service_by_name(NODE_SERVICE)
                .unwrap()
                .methods()
                .find(|m| m.name() == name)
                .unwrap()
                .output();
            render(&DynamicMessage::new(output)).unwrap()
        };
        assert_eq!(answer("HasIpAddress"), r#"{"owned":false}"#);
        assert_eq!(answer("NetworkTest"), r#"{"verdicts":[]}"#);
        // Not a fuller one: there a default may mean "not asked".
        let mut version = DynamicMessage::new(
            pool.get_message_by_name("gnt.node.v1.VersionResponse")
                .unwrap(),
        );
        version.set_field_by_name("protocol_version", prost_reflect::Value::U32(1));
        assert_eq!(render(&version).unwrap(), r#"{"protocolVersion":1}"#);
    }

    #[test]
    fn every_procedure_is_known_to_read_or_to_change_node_state() {
        let pool = DescriptorPool::decode(gnt_proto::FILE_DESCRIPTOR_SET).unwrap();
        let service = pool.get_service_by_name(NODE_SERVICE).unwrap();
        for method in service.methods() {
            let name = method.name();
            let changing = EFFECTS.iter().any(|(p, _)| *p == name);
            assert!(
                READ_ONLY.contains(&name) != changing,
                "{name}: put it in exactly one of READ_ONLY and EFFECTS"
            );
        }
        assert_eq!(effect("Version"), None);
        assert_eq!(effect("WriteTrust"), Some("replace the trusted CAs"));
        assert_eq!(effect("NotYetKnown"), Some("change its state"));
    }

    #[test]
    fn procedures_are_found_by_name_with_their_request_checked() {
        let call = PreparedCall::new("Version", "").unwrap();
        assert_eq!(call.name(), "Version");
        let ping = PreparedCall::new(
            "TcpPing",
            r#"{"target":"10.0.0.1","port":1811,"liveportNeeded":true}"#,
        );
        let err = ping.unwrap_err();
        assert!(
            err.to_string()
                .contains("not a valid gnt.node.v1.TcpPingRequest"),
            "{err}"
        );
        PreparedCall::new(
            "TcpPing",
            r#"{"target":"10.0.0.1","port":1811,"livePortNeeded":true}"#,
        )
        .unwrap();
        let err = PreparedCall::new("Reboot", "").unwrap_err();
        assert!(
            err.to_string().contains("available: Version, NodeInfo"),
            "{err}"
        );
        let err = PreparedCall::new("UploadFile", "").unwrap_err();
        assert!(matches!(err, ProcedureError::Streaming(_)), "{err}");
    }
}
