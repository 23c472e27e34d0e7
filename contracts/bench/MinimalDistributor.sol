// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/**
 * @title MinimalDistributor
 * @notice Benchmark baseline (not part of Tally): a single-root Merkle distributor in the style
 * of Uniswap's merkle-distributor, with nothing else: immutable token and root, a packed claimed
 * bitmap (256 per word), calldata proofs, SafeERC20. Its leaves are the SettlementVault's, with a
 * fixed `roundId`, so the same payout tree is claimed from both and their gas compared.
 */
contract MinimalDistributor {
    using SafeERC20 for IERC20;

    IERC20 public immutable token;
    bytes32 public immutable merkleRoot;
    uint256 public immutable roundId;

    mapping(uint256 => uint256) private _claimedBitMap; // word index => 256 claimed bits

    event Claimed(uint256 index, address account, uint256 amount);

    error MinimalDistributorAlreadyClaimed(uint256 index);
    error MinimalDistributorInvalidProof();

    constructor(IERC20 token_, bytes32 merkleRoot_, uint256 roundId_) {
        token = token_;
        merkleRoot = merkleRoot_;
        roundId = roundId_;
    }

    function isClaimed(uint256 index) external view returns (bool) {
        return _claimedBitMap[index >> 8] & (1 << (index & 0xff)) != 0;
    }

    function claim(uint256 index, address account, uint256 amount, bytes32[] calldata proof) external {
        uint256 wordIndex = index >> 8;
        uint256 bit = 1 << (index & 0xff);
        uint256 word = _claimedBitMap[wordIndex];
        if (word & bit != 0) revert MinimalDistributorAlreadyClaimed(index);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(roundId, index, account, amount))));
        if (!MerkleProof.verifyCalldata(proof, merkleRoot, leaf)) revert MinimalDistributorInvalidProof();

        _claimedBitMap[wordIndex] = word | bit;
        emit Claimed(index, account, amount);
        token.safeTransfer(account, amount);
    }
}
