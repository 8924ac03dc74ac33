//! The standard gRPC services: server reflection v1 lists antrean's services, and health reports SERVING.

mod common;

use common::Server;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{FileDescriptorResponse, ServerReflectionRequest};

/// Sends one reflection request and returns its answer.
async fn ask(
    client: &mut ServerReflectionClient<tonic::transport::Channel>,
    request: MessageRequest,
) -> MessageResponse {
    let request = ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let mut answers =
        client.server_reflection_info(tokio_stream::iter([request])).await.expect("reflection").into_inner();
    let answer = answers.message().await.expect("answer").expect("one answer");
    answer.message_response.expect("a response")
}

#[tokio::test]
async fn reflection_v1_lists_the_booking_and_admin_services() {
    let server = Server::start();
    let mut client = ServerReflectionClient::new(server.channel().await);

    let answer = ask(&mut client, MessageRequest::ListServices(String::new())).await;

    let MessageResponse::ListServicesResponse(list) = answer else { panic!("not a service list: {answer:?}") };
    let names: Vec<&str> = list.service.iter().map(|service| service.name.as_str()).collect();
    assert!(names.contains(&"antrean.v1.BookingService"), "{names:?}");
    assert!(names.contains(&"antrean.v1.AdminService"), "{names:?}");
}

#[tokio::test]
async fn reflection_v1_serves_the_file_declaring_a_service() {
    let server = Server::start();
    let mut client = ServerReflectionClient::new(server.channel().await);

    let answer = ask(&mut client, MessageRequest::FileContainingSymbol("antrean.v1.BookingService".into())).await;

    let MessageResponse::FileDescriptorResponse(FileDescriptorResponse { file_descriptor_proto }) = answer else {
        panic!("not a file descriptor: {answer:?}")
    };
    assert!(!file_descriptor_proto.is_empty());
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_each_service() {
    let server = Server::start();
    let mut health = HealthClient::new(server.channel().await);

    for service in ["", "antrean.v1.BookingService", "antrean.v1.AdminService"] {
        let request = HealthCheckRequest { service: service.to_owned() };
        let status = health.check(request).await.expect("health").into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "health of {service:?}");
    }
}

/// A reflection client (grpcurl, Postman, grpc-go's own servers) expects the health service among the services and its
/// schema resolvable, as grpc-go servers do: `grpcurl list` and `grpcurl describe grpc.health.v1.Health`.
#[tokio::test]
async fn reflection_lists_and_describes_the_health_service() {
    let server = Server::start();
    let mut client = ServerReflectionClient::new(server.channel().await);

    let listed = ask(&mut client, MessageRequest::ListServices(String::new())).await;
    let described = ask(&mut client, MessageRequest::FileContainingSymbol("grpc.health.v1.Health".into())).await;

    let MessageResponse::ListServicesResponse(list) = listed else { panic!("not a service list: {listed:?}") };
    let names: Vec<&str> = list.service.iter().map(|service| service.name.as_str()).collect();
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    let MessageResponse::FileDescriptorResponse(FileDescriptorResponse { file_descriptor_proto }) = described else {
        panic!("grpc.health.v1.Health did not resolve: {described:?}")
    };
    let file = <prost_types::FileDescriptorProto as prost::Message>::decode(&file_descriptor_proto[0][..])
        .expect("a file descriptor");
    assert_eq!(file.package(), "grpc.health.v1");
    assert!(file.service.iter().any(|service| service.name() == "Health"), "{file:?}");
}
