#pragma once
// gRPC statuses and absl ones are the same codes (both follow
// google.rpc.Code): the one place that converts between them.

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace setdiag {

inline absl::Status FromGrpcStatus(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// "UNAVAILABLE", "RESOURCE_EXHAUSTED", ... as both document them.
inline std::string GrpcCodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

}  // namespace setdiag
