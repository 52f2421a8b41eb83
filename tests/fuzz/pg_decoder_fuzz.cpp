// libFuzzer target for the PostgreSQL codec: every input goes through both decoders and the frame
// functions, with invariants asserted, and Bind frames through the trail's summary (extended.cpp,
// compiled in). Must not depend on anything but gh_pg_codec, that file and gh_base.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/assert.hpp"
#include "protocols/postgres/codec/decoder.hpp"
#include "protocols/postgres/codec/encoder.hpp"
#include "protocols/postgres/extended.hpp"

namespace {

using gh::pg::Bytes;
using namespace gh::pg;

// A view handed out by the decoder must lie inside the input it was given.
bool inside(Bytes in, const void* p, size_t n) {
  if (n == 0) return true;
  const auto* b = static_cast<const std::byte*>(p);
  return b >= in.data() && b + n <= in.data() + in.size();
}
bool inside(Bytes in, std::string_view s) { return inside(in, s.data(), s.size()); }
bool inside(Bytes in, Bytes s) { return inside(in, s.data(), s.size()); }

std::string_view frame_of(Bytes in, size_t n) { return wire::as_chars(in.first(n)); }

// The trail's Bind summary (protocols/postgres/extended.cpp) agrees with the decoder on a whole
// frame, and on any prefix gives the first parameters' sizes and heads inside the prefix only.
void check_bind_summary(Bytes frame, const Bind& b, const std::vector<ColumnValue>& values) {
  constexpr size_t kHead = 16;
  const auto whole = summarize_bind(frame, kHead);
  GH_ASSERT(whole.has_value());
  GH_ASSERT(whole->portal == b.portal && whole->statement == b.statement);
  GH_ASSERT(whole->parameter_count == b.parameter_count);
  GH_ASSERT(whole->parameters.size() == values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const BindParameter& p = whole->parameters[i];
    GH_ASSERT(p.size == (values[i] ? int64_t(values[i]->size()) : -1));
    GH_ASSERT(p.format == b.parameter_format(uint16_t(i)));
    GH_ASSERT(!values[i] || values[i]->starts_with(p.head));
    GH_ASSERT(p.head.size() <= kHead);
  }
  for (size_t n = 0; n < frame.size(); n += n < 256 ? 1 : 61) {
    std::vector<std::byte> prefix(frame.begin(), frame.begin() + n);  // exactly n bytes
    const auto part = summarize_bind(prefix, kHead);
    if (!part) continue;
    GH_ASSERT(part->parameters.size() <= whole->parameters.size());
    for (size_t i = 0; i < part->parameters.size(); ++i) {
      const BindParameter& p = part->parameters[i];
      GH_ASSERT(inside(prefix, p.head));
      GH_ASSERT(p.size == whole->parameters[i].size);
      GH_ASSERT(whole->parameters[i].head.starts_with(p.head));
    }
  }
}

// Re-encodes what can be re-encoded exactly and compares with the frame, checks views and walks
// every list so that the readers are exercised too.
void check_frontend(Bytes in, size_t consumed, const FrontendMessage& m) {
  const std::string_view frame = frame_of(in, consumed);
  std::string again;
  if (const auto* s = std::get_if<StartupMessage>(&m)) {
    GH_ASSERT(inside(in, s->parameters_raw));
    std::vector<StartupParameter> params;
    for (const StartupParameter& p : s->parameters()) params.push_back(p);
    encode_startup_message(again, params, s->protocol_version);
    GH_ASSERT(again == frame);
  } else if (const auto* q = std::get_if<Query>(&m)) {
    GH_ASSERT(inside(in, q->sql));
    encode_query(again, q->sql);
    GH_ASSERT(again == frame);
  } else if (const auto* p = std::get_if<Parse>(&m)) {
    std::vector<int32_t> types;
    for (int32_t t : p->parameter_type_range()) types.push_back(t);
    GH_ASSERT(types.size() == p->parameter_type_count);
    encode_parse(again, p->statement, p->query, types);
    GH_ASSERT(again == frame);
  } else if (const auto* b = std::get_if<Bind>(&m)) {
    std::vector<ColumnValue> values;
    for (const ColumnValue& v : b->parameter_range()) {
      GH_ASSERT(!v || inside(in, *v));
      values.push_back(v);
    }
    GH_ASSERT(values.size() == b->parameter_count);
    for (uint16_t i = 0; i < b->parameter_count; ++i) {
      const int16_t f = b->parameter_format(i);
      GH_ASSERT(f == 0 || f == 1);
    }
    if (b->parameter_format_count == 0 && b->result_format_count == 0) {
      encode_bind(again, b->portal, b->statement, values);
      GH_ASSERT(again == frame);
    }
    check_bind_summary(in.first(consumed), *b, values);
  } else if (const auto* d = std::get_if<Describe>(&m)) {
    encode_describe(again, d->kind, d->name);
    GH_ASSERT(again == frame);
  } else if (const auto* c = std::get_if<Close>(&m)) {
    encode_close(again, c->kind, c->name);
    GH_ASSERT(again == frame);
  } else if (const auto* e = std::get_if<Execute>(&m)) {
    encode_execute(again, e->portal, e->max_rows);
    GH_ASSERT(again == frame);
  } else if (const auto* cd = std::get_if<CopyData>(&m)) {
    GH_ASSERT(inside(in, cd->data));
    encode_copy_data(again, cd->data);
    GH_ASSERT(again == frame);
  } else if (const auto* pw = std::get_if<PasswordMessage>(&m)) {
    GH_ASSERT(inside(in, pw->body));
    if (const auto password = parse_password(pw->body)) {
      GH_ASSERT(inside(in, *password));
      encode_password_message(again, *password);
      GH_ASSERT(again == frame);
    }
    if (const auto sasl = parse_sasl_initial_response(pw->body)) {
      GH_ASSERT(inside(in, sasl->mechanism));
      GH_ASSERT(!sasl->data || inside(in, *sasl->data));
      again.clear();
      encode_sasl_initial_response(again, sasl->mechanism, sasl->data);
      GH_ASSERT(again == frame);
    }
  }
}

// ErrorResponse / NoticeResponse: the fields read back, written again, give the same frame.
void rebuild_field_list(Bytes in, char type, Bytes fields, std::string& out) {
  MessageWriter w(out);
  w.begin(type);
  for (const ErrorField& f : error_field_range(fields)) {
    GH_ASSERT(f.code != 0 && inside(in, f.value));
    w.put_char(f.code);
    w.put_cstr(f.value);
  }
  w.put_i8(0);
  w.finish();
}

void check_backend(Bytes in, size_t consumed, const BackendMessage& m) {
  const std::string_view frame = frame_of(in, consumed);
  std::string again;
  if (const auto* t = std::get_if<RowDescription>(&m)) {
    std::vector<FieldDescription> fields;
    for (const FieldDescription& f : t->field_range()) fields.push_back(f);
    GH_ASSERT(fields.size() == t->field_count);
    encode_row_description(again, fields);
    GH_ASSERT(again == frame);
  } else if (const auto* d = std::get_if<DataRow>(&m)) {
    std::vector<ColumnValue> values;
    for (const ColumnValue& v : d->value_range()) {
      GH_ASSERT(!v || inside(in, *v));
      values.push_back(v);
    }
    GH_ASSERT(values.size() == d->column_count);
    encode_data_row(again, values);
    GH_ASSERT(again == frame);
  } else if (const auto* e = std::get_if<ErrorResponse>(&m)) {
    rebuild_field_list(in, ErrorResponse::kType, e->fields, again);
    GH_ASSERT(again == frame);
    GH_ASSERT(!e->field(error_field::kMessage) || inside(in, *e->field(error_field::kMessage)));
  } else if (const auto* n = std::get_if<NoticeResponse>(&m)) {
    rebuild_field_list(in, NoticeResponse::kType, n->fields, again);
    GH_ASSERT(again == frame);
  } else if (const auto* a = std::get_if<Authentication>(&m)) {
    for (std::string_view s : a->sasl_mechanisms()) GH_ASSERT(!s.empty() && inside(in, s));
    encode_authentication(again, a->code, a->data);
    GH_ASSERT(again == frame);
  } else if (const auto* p = std::get_if<ParameterStatus>(&m)) {
    encode_parameter_status(again, p->name, p->value);
    GH_ASSERT(again == frame);
  } else if (const auto* c = std::get_if<CommandComplete>(&m)) {
    encode_command_complete(again, c->tag);
    GH_ASSERT(again == frame);
  } else if (const auto* v = std::get_if<NegotiateProtocolVersion>(&m)) {
    std::vector<std::string_view> options;
    for (std::string_view s : v->option_range()) options.push_back(s);
    GH_ASSERT(options.size() == v->option_count);
    encode_negotiate_protocol_version(again, v->newest_minor, options);
    GH_ASSERT(again == frame);
  } else if (const auto* f = std::get_if<FunctionCallResponse>(&m)) {
    encode_function_call_response(again, f->result);
    GH_ASSERT(again == frame);
  }
}

// The per-call contract of every decoder (decoder.hpp).
template <class Decoded>
void check_result(Bytes in, const Decoded& r) {
  GH_ASSERT(r.consumed <= in.size());
  switch (r.status) {
    case Status::kMessage:
      GH_ASSERT(r.consumed > 0 && r.consumed == r.frame_bytes);
      GH_ASSERT(r.error == DecodeError::kNone);
      break;
    case Status::kNeedMore:
      GH_ASSERT(r.consumed == 0 && r.error == DecodeError::kNone);
      GH_ASSERT(r.frame_bytes == 0 || r.frame_bytes > in.size());
      break;
    case Status::kError:
      GH_ASSERT(r.consumed == 0 && r.error != DecodeError::kNone);
      break;
  }
}

template <class Decoder, class Check>
void drain(Decoder& d, Bytes in, Check check) {
  // Each kMessage consumes at least one byte, so this loop ends within in.size() rounds.
  while (true) {
    Decoder before = d;
    const auto r = d.next(in);
    check_result(in, r);
    if (r.status != Status::kMessage) return;
    check(in, r.consumed, r.message);
    // The same frame one byte short can only be waited for, from the same decoder state.
    GH_ASSERT(before.next(in.first(r.consumed - 1)).status == Status::kNeedMore);
    in = in.subspan(r.consumed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);

  // Default limits and tight ones (so that the "too large" paths are reached with small inputs).
  DecoderLimits tight;
  tight.startup_bytes_max = 64;
  tight.small_message_bytes_max = 64;
  tight.auth_bytes_max = 96;
  tight.parameter_status_bytes_max = 96;
  tight.message_bytes_max = 256;

  for (const DecoderLimits& limits : {DecoderLimits{}, tight}) {
    FrontendDecoder startup(limits);
    drain(startup, in, check_frontend);

    FrontendDecoder typed(limits);
    std::string hello;
    const StartupParameter params[] = {{"user", "fuzz"}};
    encode_startup_message(hello, params);
    GH_ASSERT(typed.next(wire::as_bytes(hello)).status == Status::kMessage);
    drain(typed, in, check_frontend);

    BackendDecoder backend(limits);
    drain(backend, in, check_backend);

    const FrontendDecoded f = decode_frontend_frame(in, limits);
    check_result(in, f);
    if (f.status == Status::kMessage) {
      check_frontend(in, f.consumed, f.message);
      // The same frame one byte short is incomplete, never an error or a different message.
      const FrontendDecoded shorter = decode_frontend_frame(in.first(f.consumed - 1), limits);
      GH_ASSERT(shorter.status == Status::kNeedMore);
    }
    const BackendDecoded b = decode_backend_frame(in, limits);
    check_result(in, b);
    if (b.status == Status::kMessage) {
      check_backend(in, b.consumed, b.message);
      const BackendDecoded shorter = decode_backend_frame(in.first(b.consumed - 1), limits);
      GH_ASSERT(shorter.status == Status::kNeedMore);
    }
  }

  const EncryptionAnswer a = decode_encryption_answer(in);
  GH_ASSERT(a.consumed <= in.size());
  return 0;
}
