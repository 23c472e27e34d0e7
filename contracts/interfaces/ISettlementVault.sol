// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/**
 * @title ISettlementVault
 * @notice ERC-20 escrow that pays Tally's settlement rounds. Anyone deposits revenue; the
 * operator proposes a round (payout Merkle root, total, evidence checkpoint, policy hash), which
 * reserves `total` of the unallocated balance; during the challenge window an auditor or any
 * active participant may dispute it; an undisputed round is finalized by anyone after the window;
 * then anyone claims a payee's payout with a Merkle proof, paid to the payee's account.
 *
 * Payout leaf: OpenZeppelin StandardMerkleTree leaf of `(roundId, index, account, amount)` typed
 * `(uint256, uint256, address, uint256)`:
 * `keccak256(bytes.concat(keccak256(abi.encode(roundId, index, account, amount))))`, proofs with
 * sorted pairs (OpenZeppelin `MerkleProof`). `index` is the payee's position (0..n-1) among the
 * round's non-zero payouts sorted by address ascending.
 */
interface ISettlementVault {
    /// @notice Life cycle of a round. `None`: the id is unused.
    enum RoundStatus {
        None,
        Proposed,
        Disputed,
        Cancelled,
        Finalized
    }

    /// @notice One round as stored.
    struct Round {
        bytes32 payoutRoot;
        bytes32 policyHash; // canonical hash of the settlement policy document
        uint256 total; // reserved at propose; what the payout tree's leaves sum to
        uint256 swept; // unclaimed payouts returned to the unallocated balance by {sweep}
        uint64 evidenceSeq; // EvidenceLedger checkpoint the payouts were computed from
        uint64 challengeDeadline; // challenges before, finalize at or after (unix seconds)
        uint64 finalizedAt; // unix seconds; 0 until finalized
        RoundStatus status;
        string statementURI; // where the round's statement (payouts, inputs) is published
    }

    /// @notice One payout of a round's tree with its proof (as {claim} takes it).
    struct Payout {
        uint256 index;
        address account;
        uint256 amount;
        bytes32[] proof;
    }

    /// @notice `payer` deposited `amount` into the unallocated balance.
    event Deposited(address indexed payer, uint256 amount);
    /// @notice Round `roundId` was proposed; `total` is reserved until it is cancelled or paid.
    event RoundProposed(
        uint256 indexed roundId,
        bytes32 payoutRoot,
        uint256 total,
        uint256 evidenceSeq,
        bytes32 policyHash,
        uint64 challengeDeadline
    );
    /// @notice `challenger` disputed round `roundId`; `reasonHash` commits to its reasons.
    event RoundChallenged(uint256 indexed roundId, address indexed challenger, bytes32 reasonHash);
    /// @notice Round `roundId` was cancelled; its reservation went back to the unallocated balance.
    event RoundCancelled(uint256 indexed roundId);
    /// @notice Round `roundId` was finalized: its payouts can be claimed.
    event RoundFinalized(uint256 indexed roundId);
    /// @notice `amount` of round `roundId` was paid to `account`.
    event Claimed(uint256 indexed roundId, address indexed account, uint256 amount);
    /// @notice `amount` of round `roundId`'s unclaimed payouts went back to the unallocated balance.
    event RoundSwept(uint256 indexed roundId, uint256 amount);

    /// @notice A constructor address argument is zero.
    error SettlementVaultZeroAddress();
    /// @notice `account` lacks `role` on the registry.
    error SettlementVaultUnauthorizedAccount(address account, bytes32 role);
    /// @notice Only an auditor or an active participant may challenge; `account` is neither.
    error SettlementVaultNotAuditorOrParticipant(address account);
    /// @notice Deposits and round totals must be positive.
    error SettlementVaultZeroAmount();
    /// @notice A round needs a payout root.
    error SettlementVaultZeroPayoutRoot();
    /// @notice Round id `roundId` is taken (by a round in any status, cancelled ones included).
    error SettlementVaultRoundExists(uint256 roundId);
    /// @notice `total` exceeds the unallocated balance `unallocated`.
    error SettlementVaultInsufficientUnallocated(uint256 total, uint256 unallocated);
    /// @notice Evidence checkpoint `evidenceSeq` does not exist: the ledger holds `count`.
    error SettlementVaultUnknownCheckpoint(uint256 evidenceSeq, uint256 count);
    /// @notice The action needs round `roundId` to be Proposed; it is `status`.
    error SettlementVaultRoundNotProposed(uint256 roundId, RoundStatus status);
    /// @notice Round `roundId` is disputed: it cannot be finalized, only cancelled.
    error SettlementVaultRoundDisputed(uint256 roundId);
    /// @notice Only Proposed or Disputed rounds can be cancelled; round `roundId` is `status`.
    error SettlementVaultRoundNotCancellable(uint256 roundId, RoundStatus status);
    /// @notice The action needs round `roundId` to be Finalized; it is `status`.
    error SettlementVaultRoundNotFinalized(uint256 roundId, RoundStatus status);
    /// @notice The challenge window of round `roundId` closed at `deadline`.
    error SettlementVaultChallengeWindowClosed(uint256 roundId, uint64 deadline);
    /// @notice The challenge window of round `roundId` is open until `deadline`.
    error SettlementVaultChallengeWindowOpen(uint256 roundId, uint64 deadline);
    /// @notice Payout `index` of round `roundId` was claimed (or swept) already.
    error SettlementVaultAlreadyClaimed(uint256 roundId, uint256 index);
    /// @notice The proof does not prove `(roundId, index, account, amount)` under the round's root.
    error SettlementVaultInvalidProof(uint256 roundId, uint256 index, address account, uint256 amount);
    /// @notice Round `roundId` can be swept from `sweepableAt` (unix seconds) on.
    error SettlementVaultClaimPeriodNotOver(uint256 roundId, uint256 sweepableAt);
    /// @notice A batch is empty or its arrays differ in length.
    error SettlementVaultBadBatch();
    /// @notice Sweeping would return `swept` in all, more than round `roundId`'s `total`.
    error SettlementVaultSweepExceedsTotal(uint256 roundId, uint256 swept, uint256 total);

    /**
     * @notice Move `amount` tokens from the caller into the vault's unallocated balance.
     * @dev Requirements: not paused; `amount > 0`; the caller approved the vault for `amount`.
     * Emits {Deposited}.
     */
    function deposit(uint256 amount) external;

    /**
     * @notice Propose round `roundId`: reserve `total` for the payouts under `payoutRoot`.
     * @param evidenceSeq the EvidenceLedger checkpoint the payouts were computed from.
     * @param policyHash canonical hash of the settlement policy document.
     * @param statementURI where the round's statement is published (stored, returned by {round}).
     * @dev Requirements: caller has `OPERATOR_ROLE`; not paused; `roundId` never used; non-zero
     * root; `0 < total <= unallocated()`; `evidenceSeq < ledger.count()`. The challenge deadline
     * is `block.timestamp + challengeWindow`. Emits {RoundProposed}.
     */
    function propose(
        uint256 roundId,
        bytes32 payoutRoot,
        uint256 total,
        uint256 evidenceSeq,
        bytes32 policyHash,
        string calldata statementURI
    ) external;

    /**
     * @notice Dispute round `roundId`; `reasonHash` commits to the reasons (published off chain).
     * @dev Requirements: caller has `AUDITOR_ROLE` on the registry or is an active participant;
     * the round is Proposed; `block.timestamp < challengeDeadline`. Allowed while paused.
     * Emits {RoundChallenged}.
     */
    function challenge(uint256 roundId, bytes32 reasonHash) external;

    /**
     * @notice Cancel a Proposed or Disputed round and release its reservation, so that a
     * corrected round can be proposed under a new id.
     * @dev Requirements: caller has `OPERATOR_ROLE`. Allowed while paused. Emits {RoundCancelled}.
     */
    function cancel(uint256 roundId) external;

    /**
     * @notice Finalize an undisputed round once its challenge window has passed; its payouts
     * become claimable.
     * @dev Requirements: anyone; not paused; the round is Proposed (not Disputed);
     * `block.timestamp >= challengeDeadline`. Emits {RoundFinalized}.
     */
    function finalize(uint256 roundId) external;

    /**
     * @notice Pay `amount` to `account`: payout `index` of finalized round `roundId`.
     * @dev Anyone may call; the tokens always go to the leaf's `account`. Requirements: not
     * paused; round Finalized; `proof` proves the leaf under its payout root; not claimed yet.
     * Emits {Claimed}.
     */
    function claim(
        uint256 roundId,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) external;

    /**
     * @notice {claim} for one `account` in several rounds at once, paid with one transfer.
     * @dev Arrays are parallel (item i: round `roundIds[i]`, payout `indexes[i]`, `amounts[i]`,
     * `proofs[i]`), non-empty and of equal length. Emits {Claimed} once per item.
     */
    function claimMany(
        uint256[] calldata roundIds,
        uint256[] calldata indexes,
        address account,
        uint256[] calldata amounts,
        bytes32[][] calldata proofs
    ) external;

    /**
     * @notice Return unclaimed payouts of finalized round `roundId` to the unallocated balance,
     * once `claimExpiry` seconds have passed since it was finalized. Each swept payout is given
     * with its proof, checked like a claim, and marked claimed, so it can no longer be claimed.
     * @dev The vault does not keep a per-round claimed sum (it would cost every claim a storage
     * write), so the operator names the unclaimed payouts (from the statement and the {Claimed}
     * events); a long list may be split over several calls. Requirements: caller has
     * `OPERATOR_ROLE`; not paused; round Finalized; expiry passed; a non-empty batch of
     * unclaimed, valid payouts; the round's swept sum stays within its total. Emits
     * {RoundSwept} once per call.
     */
    function sweep(uint256 roundId, Payout[] calldata payouts) external;

    /**
     * @notice Stop deposits, proposals, finalizations, claims and sweeps (challenges, cancels and
     * views still work).
     * @dev Requirements: caller has `DEFAULT_ADMIN_ROLE` on the registry; not paused.
     * Emits {Pausable-Paused}.
     */
    function pause() external;

    /**
     * @notice Lift a pause.
     * @dev Requirements: caller has `DEFAULT_ADMIN_ROLE` on the registry; paused.
     * Emits {Pausable-Unpaused}.
     */
    function unpause() external;

    /// @notice Round `roundId` (all zero, status None, when the id is unused).
    function round(uint256 roundId) external view returns (Round memory);

    /// @notice Whether payout `index` of round `roundId` was claimed or swept (false unless the
    /// round is finalized).
    function isClaimed(uint256 roundId, uint256 index) external view returns (bool);

    /// @notice Deposited tokens not reserved by any Proposed, Disputed or Finalized round.
    function unallocated() external view returns (uint256);

    /// @notice The settlement token (fixed at deployment).
    function token() external view returns (IERC20);
}
