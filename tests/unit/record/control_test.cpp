// Merkle trees (RFC 9162 §2.1), signed control records, node keys and keyrings, anchor lines.
// Sans-I/O except for the key and keyring files, which live in a temporary directory.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <functional>

#include "record/control.hpp"
#include "record/keys.hpp"
#include "record/merkle.hpp"
#include "record/segment.hpp"
#include "record_test_support.hpp"

namespace gh::rec {
namespace {

using testing::TempDir;

ChainHash leaf(uint64_t i) {
  ChainHash h{};
  for (size_t b = 0; b < h.size(); ++b) h[b] = static_cast<uint8_t>((i * 131 + b * 7) & 0xff);
  return h;
}

std::vector<ChainHash> leaves(uint64_t n) {
  std::vector<ChainHash> out;
  for (uint64_t i = 0; i < n; ++i) out.push_back(leaf(i));
  return out;
}

// RFC 9162 §2.1.1 and §2.1.3.1 written out recursively, as the RFC states them: the oracle the
// iterative implementations are checked against.
uint64_t split_point(uint64_t n) {  // the largest power of two smaller than n
  uint64_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
MerkleHash mth(std::span<const ChainHash> d) {
  if (d.empty()) return merkle_empty_root();
  if (d.size() == 1) return merkle_leaf_hash(d[0]);
  const uint64_t k = split_point(d.size());
  return merkle_node_hash(mth(d.first(k)), mth(d.subspan(k)));
}
std::vector<MerkleHash> path(uint64_t m, std::span<const ChainHash> d) {
  if (d.size() <= 1) return {};
  const uint64_t k = split_point(d.size());
  std::vector<MerkleHash> out;
  if (m < k) {
    out = path(m, d.first(k));
    out.push_back(mth(d.subspan(k)));
  } else {
    out = path(m - k, d.subspan(k));
    out.push_back(mth(d.first(k)));
  }
  return out;
}

TEST(Merkle, EmptyTreeIsTheHashOfNothing) {
  EXPECT_EQ(to_hex(merkle_empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(merkle_root({}), merkle_empty_root());
  EXPECT_EQ(MerkleBuilder().root(), merkle_empty_root());
}

TEST(Merkle, LeafAndNodeHashesAreDomainSeparated) {
  // Leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right): a node can never pass
  // for a leaf (the second preimage attack RFC 9162 §2.1.1 guards against).
  const ChainHash a = leaf(1), b = leaf(2);
  EXPECT_NE(merkle_leaf_hash(a), a);
  EXPECT_NE(merkle_node_hash(a, b), merkle_node_hash(b, a));
  EXPECT_NE(merkle_root(std::vector{a, b}), merkle_leaf_hash(merkle_node_hash(a, b)));
}

TEST(Merkle, RootsAndEveryInclusionProofMatchTheRfcDefinitionForSizes1To70) {
  for (uint64_t n = 1; n <= 70; ++n) {
    const auto d = leaves(n);
    const MerkleHash expected = mth(d);
    MerkleBuilder builder;
    for (const ChainHash& h : d) builder.add(h);
    ASSERT_EQ(builder.size(), n);
    ASSERT_EQ(builder.root(), expected) << "builder, n=" << n;
    ASSERT_EQ(merkle_root(d), expected) << "n=" << n;
    const MerkleTree tree(d);
    ASSERT_EQ(tree.root(), expected) << "tree, n=" << n;
    for (uint64_t m = 0; m < n; ++m) {
      const auto proof = tree.inclusion_proof(m);
      ASSERT_EQ(proof, path(m, d)) << "n=" << n << " m=" << m;
      ASSERT_TRUE(merkle_verify_inclusion(d[m], m, n, proof, expected)) << "n=" << n << " m=" << m;
      // The same proof proves nothing for another leaf, index or root. (The tree size is not
      // bound by the proof alone: it comes from the signed seal that states the root.)
      ASSERT_FALSE(merkle_verify_inclusion(leaf(1000), m, n, proof, expected));
      if (n > 1) {
        ASSERT_FALSE(merkle_verify_inclusion(d[m], (m + 1) % n, n, proof, expected));
      }
      ASSERT_FALSE(merkle_verify_inclusion(d[m], m, n, proof, mth(leaves(n + 1))));
      if (!proof.empty()) {
        auto altered = proof;
        altered.back()[0] ^= 1;
        ASSERT_FALSE(merkle_verify_inclusion(d[m], m, n, altered, expected));
        auto shorter = proof;
        shorter.pop_back();
        ASSERT_FALSE(merkle_verify_inclusion(d[m], m, n, shorter, expected));
      }
      auto longer = proof;
      longer.push_back(leaf(7));
      ASSERT_FALSE(merkle_verify_inclusion(d[m], m, n, longer, expected));
    }
    ASSERT_FALSE(merkle_verify_inclusion(d[0], n, n, tree.inclusion_proof(0), expected));
  }
}

ControlRecord sample(EventType type) {
  ControlRecord r;
  r.type = type;
  r.time_ns = testing::kBaseTimeNs;
  r.number = type == EventType::kCheckpoint ? 7 : 0;
  r.shard = 3;
  r.segment = 12;
  r.header_digest = leaf(1);
  r.records = 41;
  r.last_hash = leaf(2);
  r.merkle_root = leaf(3);
  r.heartbeat = type == EventType::kCheckpoint;
  if (type == EventType::kRecovery) {
    r.previous_header_digest = leaf(4);
    r.end_offset = 9000;
    r.cut_bytes = 17;
    r.reason = "crash";
  }
  return r;
}

TEST(ControlRecord, EachTypeRoundTripsSignedAndAnyChangedByteBreaksTheSignature) {
  const auto key = testing::test_key();
  const auto other = *NodeKey::generate();
  for (EventType type : {EventType::kSeal, EventType::kCheckpoint, EventType::kRecovery}) {
    SCOPED_TRACE(std::string(event_type_name(type)));
    const ControlRecord in = sample(type);
    auto body = encode_control(in, *key);
    ASSERT_TRUE(body.has_value()) << body.error().message;
    EXPECT_EQ(body->size() + limits::chain_hash_bytes,
              control_record_bytes(type, in.reason.size()));
    auto view = decode_record_body(*body);
    ASSERT_TRUE(view.has_value()) << view.error().message;
    EXPECT_EQ(view->session_id, 0u);
    auto out = decode_control(*view);
    ASSERT_TRUE(out.has_value()) << out.error().message;
    EXPECT_EQ(out->shard, 3);
    EXPECT_EQ(out->segment, 12u);
    EXPECT_EQ(out->records, 41u);
    EXPECT_EQ(out->last_hash, in.last_hash);
    EXPECT_EQ(out->merkle_root, in.merkle_root);
    EXPECT_EQ(out->header_digest, in.header_digest);
    EXPECT_EQ(out->number, in.number);
    EXPECT_EQ(out->heartbeat, in.heartbeat);
    EXPECT_EQ(out->previous_header_digest, in.previous_header_digest);
    EXPECT_EQ(out->end_offset, in.end_offset);
    EXPECT_EQ(out->cut_bytes, in.cut_bytes);
    EXPECT_EQ(out->reason, in.reason);
    EXPECT_EQ(out->key_id, key->id());
    EXPECT_TRUE(control_signature_valid(*body, key->public_key()));
    EXPECT_FALSE(control_signature_valid(*body, other->public_key()));
    for (size_t at = 0; at < body->size(); ++at) {
      auto changed = *body;
      changed[at] ^= std::byte{0x01};
      ASSERT_FALSE(control_signature_valid(changed, key->public_key())) << "byte " << at;
    }
  }
}

TEST(ControlRecord, DecodeRefusesAnyOtherLayout) {
  const auto key = testing::test_key();
  auto body = encode_control(sample(EventType::kSeal), *key);
  ASSERT_TRUE(body.has_value());
  auto stored = to_stored(*decode_record_body(*body));
  const auto decode = [](const StoredEvent& e) {
    testing::EventView v(e);
    std::vector<std::byte> bytes(record_body_bytes(v.event));
    encode_record_body(v.event, bytes);
    auto view = decode_record_body(bytes);
    EXPECT_TRUE(view.has_value());
    auto r = decode_control(*view);
    return r ? std::string("accepted") : r.error().message;
  };
  EXPECT_EQ(decode(stored), "accepted");
  auto e = stored;
  e.session_id = 5;
  EXPECT_NE(decode(e).find("session id 0"), std::string::npos);
  e = stored;
  e.fields.pop_back();
  EXPECT_NE(decode(e).find("fields, expected"), std::string::npos);
  e = stored;
  std::swap(e.fields[0], e.fields[1]);
  EXPECT_NE(decode(e).find("has tag"), std::string::npos);
  e = stored;
  e.fields[1].value += "x";
  EXPECT_NE(decode(e).find("bytes, expected 8"), std::string::npos);
  e = stored;
  e.sequence = 2;
  EXPECT_NE(decode(e).find("sequence"), std::string::npos);
  e = stored;
  e.type = EventType::kStatement;
  EXPECT_NE(decode(e).find("not a control record"), std::string::npos);
}

TEST(AnchorLine, RoundTripsAndRefusesWhatIsNotAControlRecord) {
  const auto key = testing::test_key();
  auto body = encode_control(sample(EventType::kCheckpoint), *key);
  ASSERT_TRUE(body.has_value());
  AnchorRecord a{3, 12, 41, EventType::kCheckpoint, testing::kBaseTimeNs, *body};
  a.record.resize(a.record.size() + 32, std::byte{0x42});
  const std::string line = format_anchor_line(a, "gw-1");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto parsed = parse_anchor_line(line);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->node_id, "gw-1");
  EXPECT_EQ(parsed->anchor.shard, 3);
  EXPECT_EQ(parsed->anchor.segment, 12u);
  EXPECT_EQ(parsed->anchor.index, 41u);
  EXPECT_EQ(parsed->anchor.type, EventType::kCheckpoint);
  EXPECT_EQ(parsed->anchor.record, a.record);

  EXPECT_FALSE(parse_anchor_line("").has_value());
  EXPECT_FALSE(parse_anchor_line("{\"node_id\":\"x\"}").has_value());
  EXPECT_FALSE(parse_anchor_line(line.substr(0, line.size() / 2)).has_value());
  EXPECT_FALSE(parse_anchor_line(std::string(limits::anchor_line_bytes_max + 1, ' ')).has_value());
  testing::EventView statement(testing::statement(1, 1));
  AnchorRecord not_control = a;
  not_control.record.assign(record_body_bytes(statement.event) + 32, std::byte{0});
  encode_record_body(statement.event, std::span(not_control.record).first(not_control.record.size() - 32));
  auto refused = parse_anchor_line(format_anchor_line(not_control, "gw-1"));
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("not a control record"), std::string::npos);
}

TEST(NodeKey, FileRoundTripsAndIsNeverReplaced) {
  TempDir dir;
  const std::string file = dir / "node.key";
  auto made = NodeKey::create_file(file);
  ASSERT_TRUE(made.has_value()) << made.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = NodeKey::load(file);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  EXPECT_EQ((*loaded)->id(), (*made)->id());
  EXPECT_EQ((*loaded)->id(), key_id_of((*loaded)->public_key()));
  EXPECT_FALSE(NodeKey::create_file(file).has_value()) << "an existing key is never overwritten";
  testing::EventView v(testing::statement(1, 1));
  const std::string message = "message";
  auto signature = (*loaded)->sign(std::as_bytes(std::span(message)));
  ASSERT_TRUE(signature.has_value());
  EXPECT_TRUE(verify_ed25519((*made)->public_key(), std::as_bytes(std::span(message)), *signature));
  EXPECT_FALSE(NodeKey::load(dir / "missing.key").has_value());
  EXPECT_EQ(parse_key_id(key_id_hex((*made)->id())), (*made)->id());
  EXPECT_FALSE(parse_key_id("zz").has_value());
}

TEST(Keyring, KeepsEveryKeyAcrossRotationsAndRefusesConflicts) {
  TempDir dir;
  const std::string key_file = dir / "node.key", ring_file = dir / "keyring.json";
  bool created = false;
  auto first = load_or_create_node_key(key_file, ring_file, "gw-1", &created);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_TRUE(created);
  auto again = load_or_create_node_key(key_file, ring_file, "gw-1", &created);
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(created);
  EXPECT_EQ((*again)->id(), (*first)->id());

  auto second = rotate_node_key(key_file, ring_file, "gw-1");
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_NE((*second)->id(), (*first)->id());
  EXPECT_TRUE(std::filesystem::exists(key_file + "." + key_id_hex((*first)->id()) + ".retired"));
  auto now = NodeKey::load(key_file);
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ((*now)->id(), (*second)->id());

  auto ring = Keyring::load(ring_file);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  ASSERT_EQ(ring->entries().size(), 2u);
  ASSERT_NE(ring->find((*first)->id()), nullptr);
  EXPECT_EQ(ring->find((*first)->id())->public_key, (*first)->public_key());
  EXPECT_EQ(ring->find((*second)->id())->node_id, "gw-1");
  KeyringEntry conflict = *ring->find((*first)->id());
  conflict.node_id = "gw-2";
  EXPECT_FALSE(ring->add(conflict).has_value());

  // A keyring whose key id does not belong to its key is refused as a whole.
  std::string text = testing::read_text(ring_file);
  const std::string id = key_id_hex((*first)->id());
  text.replace(text.find(id), 2, id[0] == '0' ? "11" : "00");
  testing::write_text(ring_file, text);
  auto bad = Keyring::load(ring_file);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("does not belong"), std::string::npos);
}

}  // namespace
}  // namespace gh::rec
