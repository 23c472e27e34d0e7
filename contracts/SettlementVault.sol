// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {StorageSlot} from "@openzeppelin/contracts/utils/StorageSlot.sol";

import {IEvidenceLedger} from "./interfaces/IEvidenceLedger.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {ISettlementVault} from "./interfaces/ISettlementVault.sol";
import {TallyRoles} from "./lib/TallyRoles.sol";

/**
 * @title SettlementVault
 * @notice ERC-20 escrow for Tally's settlement rounds: deposit, propose, challenge / cancel,
 * finalize, claim, sweep. Roles come from the {ParticipantRegistry}: `OPERATOR_ROLE` proposes,
 * cancels and sweeps; `AUDITOR_ROLE` (or any active participant) challenges;
 * `DEFAULT_ADMIN_ROLE` pauses and unpauses.
 *
 * Claim gas. A claim is the one call made once per payee, so its storage reads are counted:
 * - The claimed bitmap (256 payouts per word, as in Uniswap's merkle-distributor) is keyed by
 *   round id AND payout root: word `index >> 8` of round `roundId` under root `root` lives at
 *   slot `keccak256(roundId, root, index >> 8, _CLAIMED_WORDS)` ({_claimedWord}: one hash where
 *   a nested mapping would take three). A claim recomputes the root from its proof and reads
 *   the word under that root. A word is only ever written after the root it sits under was
 *   checked to be the round's payout root, with the round Finalized. So a non-zero word proves
 *   both facts and the claim skips the round's storage (two cold reads, ~4,200 gas); only the
 *   first claim of each word (1 in 256) reads the round to check them. A finalized round never
 *   changes status again (a sweep marks payouts claimed, it does not close the round), so what
 *   the first claim of a word checked stays true.
 * - The pause flag is OpenZeppelin Pausable's own slot: the one extra cold read of a claim
 *   (~2,100 gas) compared with a single-root distributor whose root is immutable.
 * - No per-round claimed sum: it would be a storage write on every claim (~2,900 to 5,000 gas).
 *   {sweep} therefore takes the unclaimed payouts with their proofs instead of a bare round id.
 *   Consequence: the vault does not cap a round's claims at its `total` on chain; a payout tree
 *   whose leaves add up to more than `total` is what auditors catch during the challenge window
 *   (they recompute the root bit for bit from the statement).
 *
 * Reentrancy: no ReentrancyGuard (it would cost ~2,400 gas a claim). Every function completes its
 * checks and storage effects before its single token call (checks-effects-interactions): a claim
 * sets its bit before the transfer, so a re-entrant claim of the same payout reverts with
 * {SettlementVaultAlreadyClaimed}, and no function reads state that a re-entrant call could leave
 * half-updated. The token is fixed at deployment and must be a plain ERC-20 (no fee on transfer,
 * no rebasing); SafeERC20 handles tokens that return no boolean.
 */
contract SettlementVault is ISettlementVault, Pausable {
    using SafeERC20 for IERC20;

    /// @inheritdoc ISettlementVault
    IERC20 public immutable token;
    /// @notice The ParticipantRegistry that holds every role of the deployment.
    IParticipantRegistry public immutable registry;
    /// @notice The EvidenceLedger whose checkpoints rounds refer to.
    IEvidenceLedger public immutable ledger;
    /// @notice Seconds between propose and the earliest finalize (0 allowed, for tests).
    uint64 public immutable challengeWindow;
    /// @notice Seconds after finalize from which unclaimed payouts may be swept.
    uint64 public immutable claimExpiry;

    /// @dev Namespace of the claimed-bitmap words (see {_claimedWord}).
    bytes32 private constant _CLAIMED_WORDS = keccak256("tally.SettlementVault.claimedWords");

    uint256 private _unallocated;
    mapping(uint256 roundId => Round) private _rounds;

    modifier onlyRegistryRole(bytes32 role) {
        if (!registry.hasRole(role, msg.sender)) revert SettlementVaultUnauthorizedAccount(msg.sender, role);
        _;
    }

    /**
     * @param token_ the settlement token: a plain ERC-20, trusted (see the contract notes).
     * @param registry_ the ParticipantRegistry (roles and participants).
     * @param ledger_ the EvidenceLedger (checkpoints that rounds cite).
     * @param challengeWindow_ seconds a proposed round can be challenged.
     * @param claimExpiry_ seconds after finalize from which the operator may sweep.
     */
    constructor(
        IERC20 token_,
        IParticipantRegistry registry_,
        IEvidenceLedger ledger_,
        uint64 challengeWindow_,
        uint64 claimExpiry_
    ) {
        if (address(token_) == address(0) || address(registry_) == address(0) || address(ledger_) == address(0)) {
            revert SettlementVaultZeroAddress();
        }
        token = token_;
        registry = registry_;
        ledger = ledger_;
        challengeWindow = challengeWindow_;
        claimExpiry = claimExpiry_;
    }

    // --- funds and rounds ---------------------------------------------------------------

    /// @inheritdoc ISettlementVault
    function deposit(uint256 amount) external whenNotPaused {
        if (amount == 0) revert SettlementVaultZeroAmount();
        // Credit, then pull (reverts as a whole if the transfer fails).
        _unallocated += amount;
        emit Deposited(msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc ISettlementVault
    function propose(
        uint256 roundId,
        bytes32 payoutRoot,
        uint256 total,
        uint256 evidenceSeq,
        bytes32 policyHash,
        string calldata statementURI
    ) external onlyRegistryRole(TallyRoles.OPERATOR_ROLE) whenNotPaused {
        Round storage r = _rounds[roundId];
        if (r.status != RoundStatus.None) revert SettlementVaultRoundExists(roundId);
        if (payoutRoot == bytes32(0)) revert SettlementVaultZeroPayoutRoot();
        if (total == 0) revert SettlementVaultZeroAmount();
        uint256 free = _unallocated;
        if (total > free) revert SettlementVaultInsufficientUnallocated(total, free);
        uint256 checkpoints = ledger.count();
        if (evidenceSeq >= checkpoints) revert SettlementVaultUnknownCheckpoint(evidenceSeq, checkpoints);

        // Reserve the total and record the round.
        uint64 deadline = SafeCast.toUint64(block.timestamp + challengeWindow);
        _unallocated = free - total;
        r.payoutRoot = payoutRoot;
        r.policyHash = policyHash;
        r.total = total;
        r.evidenceSeq = uint64(evidenceSeq); // < checkpoints, which a uint64 holds
        r.challengeDeadline = deadline;
        r.status = RoundStatus.Proposed;
        r.statementURI = statementURI;
        emit RoundProposed(roundId, payoutRoot, total, evidenceSeq, policyHash, deadline);
    }

    /// @inheritdoc ISettlementVault
    function challenge(uint256 roundId, bytes32 reasonHash) external {
        if (!registry.hasRole(TallyRoles.AUDITOR_ROLE, msg.sender) && !registry.isActive(msg.sender)) {
            revert SettlementVaultNotAuditorOrParticipant(msg.sender);
        }
        Round storage r = _rounds[roundId];
        if (r.status != RoundStatus.Proposed) revert SettlementVaultRoundNotProposed(roundId, r.status);
        if (block.timestamp >= r.challengeDeadline) {
            revert SettlementVaultChallengeWindowClosed(roundId, r.challengeDeadline);
        }

        r.status = RoundStatus.Disputed;
        emit RoundChallenged(roundId, msg.sender, reasonHash);
    }

    /// @inheritdoc ISettlementVault
    function cancel(uint256 roundId) external onlyRegistryRole(TallyRoles.OPERATOR_ROLE) {
        Round storage r = _rounds[roundId];
        RoundStatus status = r.status;
        if (status != RoundStatus.Proposed && status != RoundStatus.Disputed) {
            revert SettlementVaultRoundNotCancellable(roundId, status);
        }

        // Release the reservation; the id stays taken.
        r.status = RoundStatus.Cancelled;
        _unallocated += r.total;
        emit RoundCancelled(roundId);
    }

    /// @inheritdoc ISettlementVault
    function finalize(uint256 roundId) external whenNotPaused {
        Round storage r = _rounds[roundId];
        RoundStatus status = r.status;
        if (status == RoundStatus.Disputed) revert SettlementVaultRoundDisputed(roundId);
        if (status != RoundStatus.Proposed) revert SettlementVaultRoundNotProposed(roundId, status);
        if (block.timestamp < r.challengeDeadline) {
            revert SettlementVaultChallengeWindowOpen(roundId, r.challengeDeadline);
        }

        r.status = RoundStatus.Finalized;
        r.finalizedAt = uint64(block.timestamp);
        emit RoundFinalized(roundId);
    }

    // --- claims -------------------------------------------------------------------------

    /// @inheritdoc ISettlementVault
    function claim(
        uint256 roundId,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) external whenNotPaused {
        // Check the proof's root and the claimed bit, set the bit, then pay. (The body of
        // {_markClaimed}, written out here: about 50 gas less per claim than calling it.)
        bytes32 root = MerkleProof.processProofCalldata(proof, _leaf(roundId, index, account, amount));
        StorageSlot.Uint256Slot storage word = _claimedWord(roundId, root, index >> 8);
        uint256 bit = 1 << (index & 0xff);
        uint256 bits = word.value;
        if (bits & bit != 0) revert SettlementVaultAlreadyClaimed(roundId, index);
        if (bits == 0) _requireFinalizedRoot(roundId, root, index, account, amount);
        word.value = bits | bit;
        emit Claimed(roundId, account, amount);
        token.safeTransfer(account, amount);
    }

    /// @inheritdoc ISettlementVault
    function claimMany(
        uint256[] calldata roundIds,
        uint256[] calldata indexes,
        address account,
        uint256[] calldata amounts,
        bytes32[][] calldata proofs
    ) external whenNotPaused {
        uint256 n = roundIds.length;
        if (n == 0 || indexes.length != n || amounts.length != n || proofs.length != n) {
            revert SettlementVaultBadBatch();
        }
        // Mark every payout claimed, then pay their sum in one transfer.
        uint256 sum;
        for (uint256 i = 0; i < n; ++i) {
            _markClaimed(roundIds[i], indexes[i], account, amounts[i], proofs[i]);
            emit Claimed(roundIds[i], account, amounts[i]);
            sum += amounts[i];
        }
        token.safeTransfer(account, sum);
    }

    /// @inheritdoc ISettlementVault
    function sweep(
        uint256 roundId,
        Payout[] calldata payouts
    ) external onlyRegistryRole(TallyRoles.OPERATOR_ROLE) whenNotPaused {
        Round storage r = _rounds[roundId];
        if (r.status != RoundStatus.Finalized) revert SettlementVaultRoundNotFinalized(roundId, r.status);
        uint256 sweepableAt = uint256(r.finalizedAt) + claimExpiry;
        if (block.timestamp < sweepableAt) revert SettlementVaultClaimPeriodNotOver(roundId, sweepableAt);
        if (payouts.length == 0) revert SettlementVaultBadBatch();

        // Mark each named payout claimed (it must be valid and unclaimed), adding up its amount.
        bytes32 root = r.payoutRoot;
        uint256 sum;
        for (uint256 i = 0; i < payouts.length; ++i) {
            Payout calldata p = payouts[i];
            if (!MerkleProof.verifyCalldata(p.proof, root, _leaf(roundId, p.index, p.account, p.amount))) {
                revert SettlementVaultInvalidProof(roundId, p.index, p.account, p.amount);
            }
            StorageSlot.Uint256Slot storage word = _claimedWord(roundId, root, p.index >> 8);
            uint256 bit = 1 << (p.index & 0xff);
            uint256 bits = word.value;
            if (bits & bit != 0) revert SettlementVaultAlreadyClaimed(roundId, p.index);
            word.value = bits | bit;
            sum += p.amount;
        }
        uint256 swept = r.swept + sum;
        if (swept > r.total) revert SettlementVaultSweepExceedsTotal(roundId, swept, r.total);

        // Return the sum to the unallocated balance.
        r.swept = swept;
        _unallocated += sum;
        emit RoundSwept(roundId, sum);
    }

    // --- pause --------------------------------------------------------------------------

    /// @inheritdoc ISettlementVault
    function pause() external onlyRegistryRole(TallyRoles.ADMIN_ROLE) {
        _pause();
    }

    /// @inheritdoc ISettlementVault
    function unpause() external onlyRegistryRole(TallyRoles.ADMIN_ROLE) {
        _unpause();
    }

    // --- views --------------------------------------------------------------------------

    /// @inheritdoc ISettlementVault
    function round(uint256 roundId) external view returns (Round memory) {
        return _rounds[roundId];
    }

    /// @inheritdoc ISettlementVault
    function isClaimed(uint256 roundId, uint256 index) external view returns (bool) {
        Round storage r = _rounds[roundId];
        if (r.status != RoundStatus.Finalized) return false;
        return _claimedWord(roundId, r.payoutRoot, index >> 8).value & (1 << (index & 0xff)) != 0;
    }

    /// @inheritdoc ISettlementVault
    function unallocated() external view returns (uint256) {
        return _unallocated;
    }

    // --- internals ----------------------------------------------------------------------

    /**
     * @dev Check a claim of payout `index` of round `roundId` and set its claimed bit. The word
     * is read under the root that `proof` leads to; when that word is still zero, nothing proves
     * yet that this root is the finalized round's, so the round is read and checked (see the
     * contract notes).
     */
    function _markClaimed(
        uint256 roundId,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) private {
        bytes32 root = MerkleProof.processProofCalldata(proof, _leaf(roundId, index, account, amount));
        StorageSlot.Uint256Slot storage word = _claimedWord(roundId, root, index >> 8);
        uint256 bit = 1 << (index & 0xff);
        uint256 bits = word.value;
        if (bits & bit != 0) revert SettlementVaultAlreadyClaimed(roundId, index);
        if (bits == 0) _requireFinalizedRoot(roundId, root, index, account, amount);
        word.value = bits | bit;
    }

    /// @dev The first claim of a bitmap word: `root` must be the root of round `roundId`, and the
    /// round Finalized (see the contract notes).
    function _requireFinalizedRoot(
        uint256 roundId,
        bytes32 root,
        uint256 index,
        address account,
        uint256 amount
    ) private view {
        Round storage r = _rounds[roundId];
        if (r.status != RoundStatus.Finalized) revert SettlementVaultRoundNotFinalized(roundId, r.status);
        if (r.payoutRoot != root) revert SettlementVaultInvalidProof(roundId, index, account, amount);
    }

    /**
     * @dev The claimed-bitmap word `wordIndex` of round `roundId` under payout root `root`, at
     * slot `keccak256(abi.encode(roundId, root, wordIndex, _CLAIMED_WORDS))`. Solidity's own
     * slots are hashes of 32 or 64 bytes (arrays, mappings), never of 128, so none collides.
     */
    function _claimedWord(
        uint256 roundId,
        bytes32 root,
        uint256 wordIndex
    ) private pure returns (StorageSlot.Uint256Slot storage word) {
        bytes32 slot;
        bytes32 namespace = _CLAIMED_WORDS;
        assembly ("memory-safe") {
            // Scratch past the free memory pointer, not allocated: read once, right here.
            let ptr := mload(0x40)
            mstore(ptr, roundId)
            mstore(add(ptr, 0x20), root)
            mstore(add(ptr, 0x40), wordIndex)
            mstore(add(ptr, 0x60), namespace)
            slot := keccak256(ptr, 0x80)
        }
        return StorageSlot.getUint256Slot(slot);
    }

    /// @dev OpenZeppelin StandardMerkleTree leaf of (roundId, index, account, amount).
    function _leaf(uint256 roundId, uint256 index, address account, uint256 amount) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(roundId, index, account, amount))));
    }
}
