// PostgreSQL backend decoder throughput on DataRow-heavy result streams (messages/s and bytes/s).
// Sans-I/O like the codec it measures: the streams are encoded once in memory, then decoded.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/assert.hpp"
#include "protocols/postgres/codec/decoder.hpp"
#include "protocols/postgres/codec/encoder.hpp"

namespace gh::pg {
namespace {

// A result set as the server sends it after a simple Query: RowDescription, `rows` DataRows of
// `columns` text columns of `value_bytes` each, CommandComplete, ReadyForQuery. Repeated until the
// stream holds at least `stream_bytes`, so that one pass is large enough to leave the L1/L2 caches
// out of the picture only as much as a real receive buffer would (16 KiB buffers, 2048 of them).
struct Stream {
  std::string bytes;
  size_t messages = 0;
};

Stream make_stream(int rows, int columns, int value_bytes, size_t stream_bytes) {
  Stream s;
  std::vector<FieldDescription> fields(static_cast<size_t>(columns));
  std::vector<std::string> names(static_cast<size_t>(columns));
  for (int i = 0; i < columns; ++i) {
    names[size_t(i)] = "column_" + std::to_string(i);
    fields[size_t(i)] = FieldDescription{.name = names[size_t(i)], .type_oid = 25, .type_size = -1};
  }
  const std::string value(size_t(value_bytes), 'v');
  std::vector<ColumnValue> values(static_cast<size_t>(columns), ColumnValue(value));
  while (s.bytes.size() < stream_bytes) {
    encode_row_description(s.bytes, fields);
    ++s.messages;
    for (int r = 0; r < rows; ++r) {
      encode_data_row(s.bytes, values);
      ++s.messages;
    }
    encode_command_complete(s.bytes, "SELECT " + std::to_string(rows));
    encode_ready_for_query(s.bytes, 'I');
    s.messages += 2;
  }
  return s;
}

Bytes as_span(const std::string& s) { return wire::as_bytes(s); }

// Full decode: BackendDecoder::next validates every message body (DataRow column lengths
// included) and hands out typed views, one message per call.
void BM_BackendDecoderNext(benchmark::State& state) {
  const Stream s =
      make_stream(int(state.range(0)), int(state.range(1)), int(state.range(2)), 4u << 20);
  BackendDecoder decoder;
  for (auto _ : state) {
    Bytes in = as_span(s.bytes);
    size_t n = 0;
    while (!in.empty()) {
      BackendDecoded d = decoder.next(in);
      GH_ASSERT(d.status == Status::kMessage);
      benchmark::DoNotOptimize(d.message);
      in = in.subspan(d.consumed);
      ++n;
    }
    GH_ASSERT(n == s.messages);
  }
  state.SetItemsProcessed(int64_t(state.iterations() * s.messages));
  state.SetBytesProcessed(int64_t(state.iterations() * s.bytes.size()));
}

// Full decode plus a walk over every DataRow value, what a masker would do to each column.
void BM_BackendDecoderNextWalkValues(benchmark::State& state) {
  const Stream s =
      make_stream(int(state.range(0)), int(state.range(1)), int(state.range(2)), 4u << 20);
  BackendDecoder decoder;
  for (auto _ : state) {
    Bytes in = as_span(s.bytes);
    size_t value_bytes = 0;
    while (!in.empty()) {
      BackendDecoded d = decoder.next(in);
      if (const auto* row = std::get_if<DataRow>(&d.message)) {
        for (const ColumnValue& v : row->value_range()) value_bytes += v ? v->size() : 0;
      }
      in = in.subspan(d.consumed);
    }
    benchmark::DoNotOptimize(value_bytes);
  }
  state.SetItemsProcessed(int64_t(state.iterations() * s.messages));
  state.SetBytesProcessed(int64_t(state.iterations() * s.bytes.size()));
}

// Header only: what the relay does today for a DataRow (decode_backend_header, then stream the
// body on without looking at it).
void BM_BackendHeaderSkip(benchmark::State& state) {
  const Stream s =
      make_stream(int(state.range(0)), int(state.range(1)), int(state.range(2)), 4u << 20);
  const DecoderLimits limits;
  for (auto _ : state) {
    Bytes in = as_span(s.bytes);
    size_t n = 0;
    while (!in.empty()) {
      HeaderDecoded h = decode_backend_header(in, limits);
      GH_ASSERT(h.status == Status::kMessage);
      in = in.subspan(size_t(h.header.length) + 1);
      ++n;
    }
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(int64_t(state.iterations() * s.messages));
  state.SetBytesProcessed(int64_t(state.iterations() * s.bytes.size()));
}

// Args: rows per result, columns, bytes per value.
//  {100, 4, 20}:  pgbench-accounts-like narrow rows (~110 B/DataRow)
//  {100, 20, 8}:  many short columns (~250 B/DataRow, 20 length words each)
//  {100, 4, 256}: wide rows (~1 KiB/DataRow)
//  {1, 1, 4}:     the -S answer: one row of one int per result
void row_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "value_bytes"});
  b->Args({100, 4, 20})->Args({100, 20, 8})->Args({100, 4, 256})->Args({1, 1, 4});
}

BENCHMARK(BM_BackendDecoderNext)->Apply(row_shapes);
BENCHMARK(BM_BackendDecoderNextWalkValues)->Apply(row_shapes);
BENCHMARK(BM_BackendHeaderSkip)->Apply(row_shapes);

}  // namespace
}  // namespace gh::pg
