// Guardrails on the PostgreSQL wire (see guard.hpp). Must not do I/O.
#include "protocols/postgres/guard.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "protocols/postgres/codec/encoder.hpp"

namespace gh::pg {
namespace {

// Types whose binary form is their text (pq_sendtext): text, bpchar, varchar, name, json,
// xml, unknown; jsonb's binary form is a version byte and the text.
bool text_like_type(int32_t oid) {
  switch (oid) {
    case 25:
    case 1042:
    case 1043:
    case 19:
    case 114:
    case 142:
    case 705:
    case 3802:
      return true;
    default:
      return false;
  }
}

}  // namespace

mask::SqlVerdict Guard::judge(std::string_view sql) {
  if (!lexer_hazard_.empty()) {
    return mask::SqlVerdict{mask::SqlVerdict::Kind::kDeny, std::string(mask::kRuleLexerSettings),
                            lexer_hazard_};
  }
  if (classifications_ == nullptr) return policy_->sql.judge(sql, *scratch_);
  return policy_->sql.judge(sql, classifications_->classify(sql), *scratch_);
}

std::string Guard::refusal_message(const mask::SqlVerdict& v) {
  if (v.kind == mask::SqlVerdict::Kind::kApprove) {
    return fmt::format(
        "statement refused by gatehouse: rule \"{}\" requires an approval, and this gateway "
        "has no review store (configure admin:)",
        v.rule);
  }
  return fmt::format("statement refused by gatehouse rule \"{}\"", v.rule);
}

std::string Guard::refusal_error(const mask::SqlVerdict& v) {
  return refusal_error(refusal_message(v), v.reason);
}

std::string Guard::refusal_error(std::string_view message, std::string_view detail) {
  std::string out;
  encode_error_response(out, ErrorFields{.severity = "ERROR",
                                         .sqlstate = kInsufficientPrivilege,
                                         .message = message,
                                         .detail = detail});
  return out;
}

std::string Guard::stand_in(bool parse, std::string_view statement_name, uint64_t ready,
                            std::string error) {
  refusals_.push_back({ready, std::move(error)});
  std::string out;
  if (parse) {
    encode_parse(out, statement_name, kStandIn, {});
  } else {
    encode_query(out, kStandIn);
  }
  return out;
}

std::string Guard::take_refusal(const ErrorResponse& error) {
  // The server reports a syntax error (42601) at the stand-in's only token.
  if (refusals_.empty() || refusals_.front().ready != ready_count_ + 1 ||
      error.field('C') != "42601")
    return {};
  const auto message = error.field('M');
  if (!message || message->find(kStandIn) == std::string_view::npos) return {};
  std::string refusal = std::move(refusals_.front().error);
  refusals_.erase(refusals_.begin());
  return refusal;
}

void Guard::on_ready() {
  ++ready_count_;
  std::erase_if(refusals_, [&](const Refusal& r) { return r.ready <= ready_count_; });
}

void Guard::on_parameter_status(std::string_view name, std::string_view value) {
  if (!sql_active()) return;
  if (name == "standard_conforming_strings") {
    if (value != "on") {
      lexer_hazard_ = "the session's standard_conforming_strings is off";
    } else if (lexer_hazard_.find("standard_conforming_strings") != std::string::npos) {
      lexer_hazard_.clear();
    }
  } else if (name == "client_encoding") {
    if (!mask::client_encoding_lexes_safely(value)) {
      lexer_hazard_ =
          fmt::format("the session's client_encoding {} cannot be parsed safely", value);
    } else if (lexer_hazard_.find("client_encoding") != std::string::npos) {
      lexer_hazard_.clear();
    }
  }
}

void Guard::on_row_description(const RowDescription& rd) {
  columns_.clear();
  if (!mask_active()) return;
  for (const FieldDescription& f : rd.field_range()) {
    Column c;
    c.rule = policy_->mask.column_rule(f.name);
    c.binary = f.format != 0;
    c.scan = !c.binary || text_like_type(f.type_oid);
    columns_.push_back(c);
  }
}

bool Guard::mask_row(Bytes frame, const DataRow& row, std::string& out) {
  fired_.clear();
  if (!mask_active()) return false;
  const char* base = reinterpret_cast<const char*>(frame.data());
  bool changed = false;
  size_t index = 0;
  for (const ColumnValue& v : row.value_range()) {
    const Column column = index < columns_.size() ? columns_[index] : Column{};
    ++index;
    if (!v || v->empty()) continue;
    const size_t at = size_t(v->data() - base);
    if (column.rule >= 0) {
      if (!changed) out.assign(base, frame.size());
      policy_->mask.mask_whole(column.rule, *v, out.data() + at, column.binary && !column.scan);
      fired_.push_back(policy_->mask.rule_name(column.rule));
      changed = true;
      continue;
    }
    if (!column.scan) continue;
    mask_in_frame(frame, *v, out, changed);
  }
  return changed;
}

void Guard::mask_in_frame(Bytes frame, std::string_view value, std::string& out, bool& changed) {
  if (value.empty() || policy_->mask.mask_value(value, *scratch_, value_, matches_) == 0) return;
  const char* base = reinterpret_cast<const char*>(frame.data());
  if (!changed) out.assign(base, frame.size());
  std::memcpy(out.data() + (value.data() - base), value_.data(), value.size());
  changed = true;
  if (value_.capacity() > (64u << 10)) std::string().swap(value_);  // no large buffer kept
  for (const mask::Match& m : matches_) {
    const std::string& name = policy_->mask.patterns()->pattern(m.pattern).name;
    if (std::find(fired_.begin(), fired_.end(), name) == fired_.end()) fired_.push_back(name);
  }
}

bool Guard::mask_copy_data(Bytes frame, const CopyData& data, std::string& out) {
  fired_.clear();
  if (!mask_active()) return false;
  bool changed = false;
  mask_in_frame(frame, {reinterpret_cast<const char*>(data.data.data()), data.data.size()}, out,
                changed);
  return changed;
}

bool Guard::mask_fields(Bytes frame, Bytes fields, std::string& out) {
  fired_.clear();
  if (!mask_active()) return false;
  bool changed = false;
  for (const ErrorField& f : error_field_range(fields)) {
    if (f.code == 'S' || f.code == 'V' || f.code == 'C') continue;
    mask_in_frame(frame, f.value, out, changed);
  }
  return changed;
}

std::string_view Guard::mask_text(std::string_view text, std::string& storage) {
  if (!mask_active() || policy_->mask.mask_value(text, *scratch_, storage, matches_) == 0)
    return text;
  return storage;
}

}  // namespace gh::pg
