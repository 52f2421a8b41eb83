// Merkle trees over a segment's record chain hashes in the shape of RFC 9162 §2.1: the root, an
// incremental builder, inclusion proofs and their check. Pure functions over hashes; no I/O.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/error.hpp"
#include "record/event.hpp"

namespace gh::rec {

using MerkleHash = ChainHash;  // SHA-256, 32 bytes

// RFC 9162 §2.1.1: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right). Our
// leaves' data are the 32-byte chain hashes of the segment's records, in order.
MerkleHash merkle_leaf_hash(const ChainHash& record_hash);
MerkleHash merkle_node_hash(const MerkleHash& left, const MerkleHash& right);
// MTH({}) = SHA-256 of the empty string.
MerkleHash merkle_empty_root();

// Adds leaves one at a time and gives the root of the leaves so far at any point, keeping
// one hash per set bit of the leaf count (at most 64): no allocation, O(log n) per leaf.
class MerkleBuilder {
 public:
  void add(const ChainHash& record_hash);
  uint64_t size() const { return size_; }
  MerkleHash root() const;  // MTH(D[0:size])
  void clear() { size_ = 0; }
  bool operator==(const MerkleBuilder&) const = default;

 private:
  // stack_[i] is the root of a perfect subtree; sizes decrease from stack_[0] upwards, matching
  // the binary decomposition of size_ from its highest bit.
  std::array<MerkleHash, 64> stack_{};
  uint64_t size_ = 0;
};

// The root over all of `record_hashes` (RFC 9162 §2.1.1).
MerkleHash merkle_root(std::span<const ChainHash> record_hashes);

// Every level of the tree over a segment's leaves, for handing out many inclusion proofs. The
// RFC 9162 tree is the one where each level pairs neighbours and carries an odd last node up
// unchanged: MTH's split at the largest power of two below n gives exactly that shape.
class MerkleTree {
 public:
  explicit MerkleTree(std::span<const ChainHash> record_hashes);
  uint64_t size() const { return levels_.empty() ? 0 : levels_.front().size(); }
  MerkleHash root() const;
  // RFC 9162 §2.1.3.1: PATH(index, D[0:n]), the audit path of leaf `index`, leaf side first.
  // `index` must be < size().
  std::vector<MerkleHash> inclusion_proof(uint64_t index) const;

 private:
  std::vector<std::vector<MerkleHash>> levels_;  // levels_[0]: leaf hashes; back(): the root
};

// RFC 9162 §2.1.3.2: whether `proof` proves that the leaf with `record_hash` is number `index` of
// a tree of `tree_size` leaves whose root is `root`.
bool merkle_verify_inclusion(const ChainHash& record_hash, uint64_t index, uint64_t tree_size,
                             std::span<const MerkleHash> proof, const MerkleHash& root);

}  // namespace gh::rec
