#include "services/scheduler/scheduler_module.h"

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "services/scheduler/scheduler_service.h"

namespace gyre::scheduler {
namespace {

absl::Status DecodeNumber(const YAML::Node& value, double* target) {
  if (!value.IsScalar()) return absl::InvalidArgumentError("expected a number");
  try {
    *target = value.as<double>();
  } catch (const YAML::Exception&) {
    return absl::InvalidArgumentError(absl::StrCat("\"", value.Scalar(), "\" is not a number"));
  }
  return absl::OkStatus();
}

// A YAML map of name to weight (tenant_weights, label_weights) into `weights`.
absl::Status DecodeWeights(const YAML::Node& value, absl::string_view what,
                           absl::flat_hash_map<std::string, double>* weights) {
  if (!value.IsMap()) return absl::InvalidArgumentError(absl::StrCat("expected a map of ", what));
  weights->clear();
  for (const auto& entry : value) {
    const std::string name = entry.first.Scalar();
    if (absl::Status s = DecodeNumber(entry.second, &(*weights)[name]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

std::string WeightsText(const absl::flat_hash_map<std::string, double>& weights) {
  return absl::StrCat("{", absl::StrJoin(weights, ", ", absl::PairFormatter(": ")), "}");
}

}  // namespace

void SchedulerModule::RegisterConfig(config::ConfigSchema* schema) {
  schema->AddDuration("aging_grace", &aging_grace_,
                      "time in READY before aging raises a task's priority");
  schema->AddDuration("aging_interval", &aging_interval_,
                      "after the grace, waiting that adds one priority point");
  schema->AddCustom(
      "critical_path_fraction",
      [this](const YAML::Node& value) {
        return DecodeNumber(value, &ranking_.critical_path_fraction);
      },
      /*structured=*/false, "upward rank / drain horizon from which a task is critical",
      [this] { return absl::StrCat(ranking_.critical_path_fraction); });
  schema->AddCustom(
      "default_tenant_weight",
      [this](const YAML::Node& value) {
        return DecodeNumber(value, &ranking_.default_tenant_weight);
      },
      /*structured=*/false, "fair-share weight of tenants not in tenant_weights",
      [this] { return absl::StrCat(ranking_.default_tenant_weight); });
  schema->AddCustom(
      "tenant_weights",
      [this](const YAML::Node& value) {
        return DecodeWeights(value, "tenant to weight", &ranking_.tenant_weights);
      },
      /*structured=*/true, "fair-share weight per tenant, e.g. {batch: 1, interactive: 4}",
      [this] { return WeightsText(ranking_.tenant_weights); });
  schema->AddString("fair_share_label", &ranking_.fair_share_label,
                    "task label whose value is a task's fair-share group instead of its tenant "
                    "(e.g. team; empty: tenants only)");
  schema->AddCustom(
      "label_weights",
      [this](const YAML::Node& value) {
        return DecodeWeights(value, "label value to weight", &ranking_.label_weights);
      },
      /*structured=*/true, "fair-share weight per value of fair_share_label, e.g. {ml: 2, etl: 1}",
      [this] { return WeightsText(ranking_.label_weights); });
}

absl::Status SchedulerModule::ValidateConfig() {
  ranking_.aging_grace_seconds = absl::ToDoubleSeconds(aging_grace_);
  ranking_.aging_seconds_per_point = absl::ToDoubleSeconds(aging_interval_);
  return ranking_.Validate();
}

absl::Status SchedulerModule::AddServices(server::ServiceHost* host) {
  api_ = std::make_unique<server::ApiServiceModule>(
      std::make_unique<SchedulerServiceImpl>(ranking_), "gyre.v1.SchedulerService", "scheduler",
      SchedulerServiceImpl::ImplementedRpcs());
  return api_->AddServices(host);
}

}  // namespace gyre::scheduler
