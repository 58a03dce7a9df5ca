#include "services/gateway/json_body.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "libs/common/json_escape.h"

namespace gyre::gateway {

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  // Printing a well-formed message cannot fail short of a bug in protobuf.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

absl::Status FromJson(absl::string_view json, google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("request body is not a valid ",
                                                   message->GetDescriptor()->name(),
                                                   " in JSON: ", status.message().ToString()));
  }
  return absl::OkStatus();
}

std::string JsonString(absl::string_view value) {
  std::string out;
  AppendJsonString(value, &out);
  return out;
}

}  // namespace gyre::gateway
