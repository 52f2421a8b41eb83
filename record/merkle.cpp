// Merkle trees over a segment's record chain hashes in the shape of RFC 9162 §2.1: the root, an
// incremental builder, inclusion proofs and their check. Pure functions over hashes; no I/O.
#include "record/merkle.hpp"

#include <openssl/evp.h>

#include <bit>
#include <memory>

#include "core/assert.hpp"

namespace gh::rec {

namespace {

const EVP_MD* sha256_md() {
  // Fetched once: an implicit fetch per digest costs a provider lookup each time.
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  GH_ASSERT(md != nullptr);
  return md;
}

MerkleHash digest(uint8_t prefix, const MerkleHash* a, const MerkleHash* b) {
  // One context per thread: verify, export and the flusher may hash concurrently.
  struct Free {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  thread_local std::unique_ptr<EVP_MD_CTX, Free> owned(EVP_MD_CTX_new());
  EVP_MD_CTX* ctx = owned.get();
  GH_ASSERT(ctx != nullptr);
  MerkleHash out{};
  unsigned int out_bytes = 0;
  GH_ASSERT(EVP_DigestInit_ex2(ctx, sha256_md(), nullptr) == 1);
  GH_ASSERT(EVP_DigestUpdate(ctx, &prefix, 1) == 1);
  if (a != nullptr) GH_ASSERT(EVP_DigestUpdate(ctx, a->data(), a->size()) == 1);
  if (b != nullptr) GH_ASSERT(EVP_DigestUpdate(ctx, b->data(), b->size()) == 1);
  GH_ASSERT(EVP_DigestFinal_ex(ctx, out.data(), &out_bytes) == 1);
  GH_ASSERT(out_bytes == out.size());
  return out;
}

}  // namespace

MerkleHash merkle_leaf_hash(const ChainHash& record_hash) {
  return digest(0x00, &record_hash, nullptr);
}

MerkleHash merkle_node_hash(const MerkleHash& left, const MerkleHash& right) {
  return digest(0x01, &left, &right);
}

MerkleHash merkle_empty_root() {
  MerkleHash out{};
  unsigned int out_bytes = 0;
  GH_ASSERT(EVP_Digest(nullptr, 0, out.data(), &out_bytes, sha256_md(), nullptr) == 1);
  return out;
}

void MerkleBuilder::add(const ChainHash& record_hash) {
  GH_ASSERT(size_ < UINT64_MAX);
  MerkleHash h = merkle_leaf_hash(record_hash);
  size_t top = static_cast<size_t>(std::popcount(size_));
  // Each trailing one bit of size_ is a perfect subtree of the new leaf's size: merge upwards.
  for (uint64_t n = size_; (n & 1) != 0; n >>= 1) {
    h = merkle_node_hash(stack_[top - 1], h);
    --top;
  }
  stack_[top] = h;
  ++size_;
}

MerkleHash MerkleBuilder::root() const {
  if (size_ == 0) return merkle_empty_root();
  const size_t top = static_cast<size_t>(std::popcount(size_));
  // MTH splits at the largest power of two below n: the largest subtree is the leftmost, and the
  // rest nests to the right of it.
  MerkleHash r = stack_[top - 1];
  for (size_t i = top - 1; i-- > 0;) r = merkle_node_hash(stack_[i], r);
  return r;
}

MerkleHash merkle_root(std::span<const ChainHash> record_hashes) {
  MerkleBuilder builder;
  for (const ChainHash& h : record_hashes) builder.add(h);
  return builder.root();
}

MerkleTree::MerkleTree(std::span<const ChainHash> record_hashes) {
  if (record_hashes.empty()) return;
  std::vector<MerkleHash> level;
  level.reserve(record_hashes.size());
  for (const ChainHash& h : record_hashes) level.push_back(merkle_leaf_hash(h));
  levels_.push_back(std::move(level));
  while (levels_.back().size() > 1) {
    const std::vector<MerkleHash>& below = levels_.back();
    std::vector<MerkleHash> up;
    up.reserve((below.size() + 1) / 2);
    for (size_t i = 0; i + 1 < below.size(); i += 2) {
      up.push_back(merkle_node_hash(below[i], below[i + 1]));
    }
    if (below.size() % 2 == 1) up.push_back(below.back());  // carried up unchanged
    levels_.push_back(std::move(up));
  }
}

MerkleHash MerkleTree::root() const {
  return levels_.empty() ? merkle_empty_root() : levels_.back().front();
}

std::vector<MerkleHash> MerkleTree::inclusion_proof(uint64_t index) const {
  GH_ASSERT(index < size());
  std::vector<MerkleHash> proof;
  for (size_t level = 0; level + 1 < levels_.size(); ++level) {
    const uint64_t sibling = index ^ 1;
    if (sibling < levels_[level].size()) proof.push_back(levels_[level][sibling]);
    index >>= 1;
  }
  return proof;
}

bool merkle_verify_inclusion(const ChainHash& record_hash, uint64_t index, uint64_t tree_size,
                             std::span<const MerkleHash> proof, const MerkleHash& root) {
  // RFC 9162 §2.1.3.2, step by step.
  if (index >= tree_size) return false;
  uint64_t fn = index;
  uint64_t sn = tree_size - 1;
  MerkleHash r = merkle_leaf_hash(record_hash);
  for (const MerkleHash& p : proof) {
    if (sn == 0) return false;
    if ((fn & 1) == 1 || fn == sn) {
      r = merkle_node_hash(p, r);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = merkle_node_hash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

}  // namespace gh::rec
