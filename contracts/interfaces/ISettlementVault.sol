// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {IEvidenceLedger} from "./IEvidenceLedger.sol";
import {IParticipantRegistry} from "./IParticipantRegistry.sol";

/**
 * @title ISettlementVault
 * @notice ERC-20 escrow that pays Tally's settlement rounds.
 *
 * Money is per depositor: a consumer (or the operator for it, {depositFor}) deposits into the
 * consumer's free balance ({balanceOf}). The operator proposes a round for one period of the
 * space's single timeline of periods: a payout Merkle root, its total, the evidence checkpoint
 * and policy it was computed from, and the debits that fund it, each taken from the free balance
 * of the consumer it names. During the challenge window a party with standing (an auditor, a
 * consumer the round debits, or a payee of the round) may dispute it; a holder of
 * `ARBITER_ROLE` resolves the dispute: upheld cancels the round and refunds its debits, rejected
 * puts it back to Proposed. An undisputed round is finalized by anyone after the window; then
 * anyone claims a payee's payout with a Merkle proof (paid to the payee's account), never more
 * than the round's total in all. After the claim period the operator sweeps what was not paid
 * back to the funders, pro rata to their debits. A depositor takes its free balance out with a
 * withdrawal notice ({requestWithdrawal}, then {withdraw} after `withdrawalDelay`).
 *
 * Payout leaf: OpenZeppelin StandardMerkleTree leaf of `(roundId, index, account, amount)` typed
 * `(uint256, uint256, address, uint256)`:
 * `keccak256(bytes.concat(keccak256(abi.encode(roundId, index, account, amount))))`, proofs with
 * sorted pairs (OpenZeppelin `MerkleProof`). `index` is the payee's position (0..n-1) among the
 * round's non-zero payouts sorted by address ascending.
 *
 * Life cycle of a round (status, and the call that moves it):
 * `None -propose-> Proposed -challenge-> Disputed -resolve(rejected)-> Proposed`;
 * `Proposed|Disputed -cancel (window only) / resolve(upheld)-> Cancelled`;
 * `Proposed -finalize (after the window)-> Finalized -sweep (after the claim period)-> Closed`.
 */
interface ISettlementVault {
    /// @notice Life cycle of a round. `None`: the id is unused. `Closed`: swept, pays nothing more.
    enum RoundStatus {
        None,
        Proposed,
        Disputed,
        Cancelled,
        Finalized,
        Closed
    }

    /// @notice One consumer's contribution to a round: `amount` taken from `account`'s free balance.
    struct Debit {
        address account;
        uint256 amount;
    }

    /// @notice One round as stored. `total`, `paid` and `status` share one storage slot.
    struct Round {
        bytes32 payoutRoot;
        bytes32 policyHash; // canonical hash of the settlement policy document
        uint120 total; // sum of the round's debits; the most its claims can pay in all
        uint120 paid; // sum of the claims paid so far
        RoundStatus status;
        uint64 evidenceSeq; // EvidenceLedger checkpoint the payouts were computed from
        uint64 challengeDeadline; // challenges and cancels before, finalize at or after (unix s)
        uint64 finalizedAt; // unix seconds; 0 until finalized
        uint64 periodStart; // the settled period [periodStart, periodEnd) (unix seconds)
        uint64 periodEnd;
        string statementURI; // where the round's statement (payouts, inputs) is published
    }

    // --- events ---------------------------------------------------------------------------

    /// @notice `payer` deposited `amount` into `account`'s free balance.
    event Deposited(address indexed account, address indexed payer, uint256 amount);
    /// @notice `account` asked to withdraw `amount` from `availableAt` on (0, 0: request cancelled).
    event WithdrawalRequested(address indexed account, uint256 amount, uint64 availableAt);
    /// @notice `amount` of `account`'s free balance was paid out to it.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice Round `roundId` was proposed for period `[periodStart, periodEnd)`; its debits
    /// follow as {RoundDebited} events.
    event RoundProposed(
        uint256 indexed roundId,
        bytes32 payoutRoot,
        uint256 total,
        uint256 evidenceSeq,
        bytes32 policyHash,
        uint64 periodStart,
        uint64 periodEnd,
        uint64 challengeDeadline
    );
    /// @notice Round `roundId` took `amount` from `account`'s free balance.
    event RoundDebited(uint256 indexed roundId, address indexed account, uint256 amount);
    /// @notice `challenger` disputed round `roundId`; `findingHash` is the keccak256 of the bytes
    /// of its published finding (the `tally audit settlement --json` report).
    event RoundChallenged(uint256 indexed roundId, address indexed challenger, bytes32 findingHash);
    /// @notice `arbiter` ruled on the dispute of round `roundId`: `upheld` (the round is cancelled)
    /// or rejected (the round is Proposed again); `rulingHash` commits to the published ruling.
    event DisputeResolved(uint256 indexed roundId, address indexed arbiter, bool upheld, bytes32 rulingHash);
    /// @notice Round `roundId` was cancelled; its debits were refunded ({RoundRefunded}, emitted before).
    event RoundCancelled(uint256 indexed roundId);
    /// @notice `amount` of round `roundId` went back to the free balance of its funder `account`
    /// (a cancel refunds the whole debit, a sweep a pro-rata share of what was not paid).
    event RoundRefunded(uint256 indexed roundId, address indexed account, uint256 amount);
    /// @notice Round `roundId` was finalized: its payouts can be claimed.
    event RoundFinalized(uint256 indexed roundId);
    /// @notice `amount` of round `roundId` was paid to `account`.
    event Claimed(uint256 indexed roundId, address indexed account, uint256 amount);
    /// @notice Round `roundId` was closed; `amount` (its total minus what was paid) went back to
    /// its funders ({RoundRefunded}, emitted before).
    event RoundSwept(uint256 indexed roundId, uint256 amount);

    // --- errors ---------------------------------------------------------------------------

    /// @notice A constructor address argument is zero.
    error SettlementVaultZeroAddress();
    /// @notice `account` lacks `role` on the registry.
    error SettlementVaultUnauthorizedAccount(address account, bytes32 role);
    /// @notice Deposits and round totals must be positive.
    error SettlementVaultZeroAmount();
    /// @notice `depositFor` needs a non-zero account.
    error SettlementVaultZeroAccount();
    /// @notice `account` has no withdrawal request.
    error SettlementVaultNoWithdrawalRequest(address account);
    /// @notice `account`'s withdrawal can be made from `availableAt` (unix seconds) on.
    error SettlementVaultWithdrawalNotReady(address account, uint64 availableAt);
    /// @notice `account` requested a withdrawal but has no free balance left to pay it.
    error SettlementVaultNothingToWithdraw(address account);
    /// @notice A round needs a payout root.
    error SettlementVaultZeroPayoutRoot();
    /// @notice A round's `total` must fit in a uint120 (`max`).
    error SettlementVaultTotalTooLarge(uint256 total, uint256 max);
    /// @notice Round id `roundId` is taken (by a round in any status, cancelled ones included).
    error SettlementVaultRoundExists(uint256 roundId);
    /// @notice Evidence checkpoint `evidenceSeq` does not exist: the ledger holds `count`.
    error SettlementVaultUnknownCheckpoint(uint256 evidenceSeq, uint256 count);
    /// @notice A period must end after it starts.
    error SettlementVaultInvalidPeriod(uint64 periodStart, uint64 periodEnd);
    /// @notice Round `pendingId` is still Proposed or Disputed: only one round is pending at a time.
    error SettlementVaultRoundPending(uint256 pendingId);
    /// @notice Round `roundId` starts at `periodStart`, before `settledUntil`, the end of the
    /// periods already settled or pending.
    error SettlementVaultPeriodOverlap(uint256 roundId, uint64 periodStart, uint64 settledUntil);
    /// @notice A round needs at least one debit.
    error SettlementVaultNoDebits();
    /// @notice Debit accounts must be non-zero and strictly ascending: `account` follows `previous`.
    error SettlementVaultDebitsNotAscending(address previous, address account);
    /// @notice The debit of `account` is zero.
    error SettlementVaultZeroDebit(address account);
    /// @notice `account`'s free balance `balance` is below the debit `amount`.
    error SettlementVaultInsufficientBalance(address account, uint256 amount, uint256 balance);
    /// @notice The debits add up to `sum`, not to the round's `total`.
    error SettlementVaultDebitsMismatch(uint256 sum, uint256 total);
    /// @notice `account` has no standing in round `roundId`: it is no auditor, no funder of the
    /// round, and its proof does not prove a payout of the round to it.
    error SettlementVaultNoStanding(uint256 roundId, address account);
    /// @notice `account` already challenged round `roundId` (one challenge per account and round).
    error SettlementVaultAlreadyChallenged(uint256 roundId, address account);
    /// @notice The action needs round `roundId` to be Proposed; it is `status`.
    error SettlementVaultRoundNotProposed(uint256 roundId, RoundStatus status);
    /// @notice Round `roundId` is disputed: it cannot be finalized before the arbiter rules.
    error SettlementVaultRoundDisputed(uint256 roundId);
    /// @notice The action needs round `roundId` to be Disputed; it is `status`.
    error SettlementVaultRoundNotDisputed(uint256 roundId, RoundStatus status);
    /// @notice Only Proposed or Disputed rounds can be cancelled; round `roundId` is `status`.
    error SettlementVaultRoundNotCancellable(uint256 roundId, RoundStatus status);
    /// @notice The action needs round `roundId` to be Finalized; it is `status`.
    error SettlementVaultRoundNotFinalized(uint256 roundId, RoundStatus status);
    /// @notice The challenge window of round `roundId` closed at `deadline`.
    error SettlementVaultChallengeWindowClosed(uint256 roundId, uint64 deadline);
    /// @notice The challenge window of round `roundId` is open until `deadline`.
    error SettlementVaultChallengeWindowOpen(uint256 roundId, uint64 deadline);
    /// @notice Payout `index` of round `roundId` was claimed already.
    error SettlementVaultAlreadyClaimed(uint256 roundId, uint256 index);
    /// @notice The proof does not prove `(roundId, index, account, amount)` under the round's root.
    error SettlementVaultInvalidProof(uint256 roundId, uint256 index, address account, uint256 amount);
    /// @notice Paying the claim would bring round `roundId`'s paid sum to `paid`, above its `total`.
    error SettlementVaultPayoutExceedsTotal(uint256 roundId, uint256 paid, uint256 total);
    /// @notice Round `roundId` can be swept from `sweepableAt` (unix seconds) on.
    error SettlementVaultClaimPeriodNotOver(uint256 roundId, uint256 sweepableAt);
    /// @notice A batch is empty or its arrays differ in length.
    error SettlementVaultBadBatch();

    // --- deposits and withdrawals ---------------------------------------------------------

    /**
     * @notice Move `amount` tokens from the caller into the caller's free balance.
     * @dev Requirements: not paused; `amount > 0`; the caller approved the vault for `amount`.
     * Emits {Deposited} (account = payer = caller).
     */
    function deposit(uint256 amount) external;

    /**
     * @notice Move `amount` tokens from the caller into `account`'s free balance (an operator
     * funding a consumer, say). The money is `account`'s from then on: only `account` can
     * withdraw it and only rounds debiting `account` can spend it.
     * @dev Requirements: not paused; `account != 0`; `amount > 0`; the caller approved the vault.
     * Emits {Deposited}.
     */
    function depositFor(address account, uint256 amount) external;

    /**
     * @notice Ask to withdraw `amount` of the caller's free balance after the notice
     * `withdrawalDelay`; replaces any earlier request; `amount == 0` cancels the request.
     * Until it is withdrawn the money stays in the free balance, and rounds may still debit it.
     * @dev Requirements: not paused. `amount` may exceed the balance ({withdraw} pays what is
     * left). Emits {WithdrawalRequested} (with `availableAt = block.timestamp + withdrawalDelay`,
     * or `(0, 0)` on a cancel).
     */
    function requestWithdrawal(uint256 amount) external;

    /**
     * @notice Pay the caller its requested withdrawal: `min(requested, balanceOf(caller))`, and
     * clear the request.
     * @dev Requirements: not paused; a request exists; `block.timestamp >= availableAt`; the
     * amount paid is non-zero. Emits {Withdrawn}.
     */
    function withdraw() external;

    // --- rounds ---------------------------------------------------------------------------

    /**
     * @notice Propose round `roundId` paying the tree under `payoutRoot` for the period
     * `[periodStart, periodEnd)`, funded by `debits` from the named consumers' free balances.
     * @param total what the tree pays in all; the debits must add up to it exactly.
     * @param evidenceSeq the EvidenceLedger checkpoint the payouts were computed from.
     * @param policyHash canonical hash of the settlement policy document.
     * @param debits funding consumers, accounts strictly ascending, amounts positive.
     * @param statementURI where the round's statement is published (stored, returned by {round}).
     * @dev Requirements, checked in this order: caller has `OPERATOR_ROLE`; not paused;
     * `roundId` never used; non-zero root; `0 < total <= type(uint120).max`;
     * `evidenceSeq < ledger.count()`; `periodStart < periodEnd`; no round Proposed or Disputed;
     * `periodStart >= settledUntil()`; `debits` non-empty, accounts non-zero and strictly
     * ascending, each amount positive and within the account's free balance, summing to `total`.
     * Effects: the debits leave the free balances; `settledUntil() = periodEnd`; the round is
     * the pending one; the challenge deadline is `block.timestamp + challengeWindow`.
     * Emits {RoundProposed}, then one {RoundDebited} per debit.
     */
    function propose(
        uint256 roundId,
        bytes32 payoutRoot,
        uint256 total,
        uint256 evidenceSeq,
        bytes32 policyHash,
        uint64 periodStart,
        uint64 periodEnd,
        Debit[] calldata debits,
        string calldata statementURI
    ) external;

    /**
     * @notice Dispute round `roundId`. `findingHash` is the keccak256 of the bytes of the
     * challenger's published finding (the `tally audit settlement --json` report).
     * @param index payout index, amount and proof: only read when the caller's standing is being
     * a payee of the round (proving leaf `(roundId, index, caller, amount)`); else pass anything.
     * @dev Requirements: the round is Proposed and `block.timestamp < challengeDeadline`; the
     * caller has standing: `AUDITOR_ROLE` on the registry, or a debit in the round, or `proof`
     * proves a payout of the round to the caller; the caller has not challenged this round
     * before. Allowed while paused. Emits {RoundChallenged}.
     */
    function challenge(
        uint256 roundId,
        bytes32 findingHash,
        uint256 index,
        uint256 amount,
        bytes32[] calldata proof
    ) external;

    /**
     * @notice Rule on the dispute of round `roundId`. Upheld: the round is cancelled exactly as
     * by {cancel} (debits refunded, `settledUntil()` back to its `periodStart`, no round
     * pending), whether or not its window has passed. Rejected: the round is Proposed again with
     * the same deadline (others with standing may still challenge before it; finalize after it).
     * @dev Requirements: caller has `ARBITER_ROLE`; the round is Disputed. Allowed while paused.
     * Emits {DisputeResolved}; when upheld then {RoundRefunded} per funder and {RoundCancelled}.
     */
    function resolve(uint256 roundId, bool upheld, bytes32 rulingHash) external;

    /**
     * @notice Withdraw a Proposed or Disputed round during its challenge window: the debits go
     * back to the funders, `settledUntil()` back to the round's `periodStart`, and a corrected
     * round can be proposed under a new id. After the window only an upheld dispute cancels.
     * @dev Requirements: caller has `OPERATOR_ROLE`; round Proposed or Disputed;
     * `block.timestamp < challengeDeadline`. Allowed while paused. Emits {RoundRefunded} per
     * funder, then {RoundCancelled}.
     */
    function cancel(uint256 roundId) external;

    /**
     * @notice Finalize an undisputed round once its challenge window has passed; its payouts
     * become claimable and no round is pending any more.
     * @dev Requirements: anyone; not paused; the round is Proposed (not Disputed);
     * `block.timestamp >= challengeDeadline`. Emits {RoundFinalized}.
     */
    function finalize(uint256 roundId) external;

    /**
     * @notice Pay `amount` to `account`: payout `index` of finalized round `roundId`.
     * @dev Anyone may call; the tokens always go to the leaf's `account`. Requirements: not
     * paused; round Finalized (a Closed round pays nothing more); `proof` proves the leaf under
     * its payout root; not claimed yet; the round's paid sum plus `amount` stays within its
     * total. Emits {Claimed}.
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
     * `proofs[i]`), non-empty and of equal length; all items are checked like {claim} or none
     * is paid. Emits {Claimed} once per item.
     */
    function claimMany(
        uint256[] calldata roundIds,
        uint256[] calldata indexes,
        address account,
        uint256[] calldata amounts,
        bytes32[][] calldata proofs
    ) external;

    /**
     * @notice Close finalized round `roundId` after its claim period and return what it did not
     * pay (`total - paid`) to its funders' free balances, pro rata to their debits: each gets
     * `floor(debit * rest / total)`, and the remainder (fewer units than funders) goes one unit
     * each to the funders in ascending address order.
     * @dev Requirements: caller has `OPERATOR_ROLE`; not paused; round Finalized;
     * `block.timestamp >= finalizedAt + claimExpiry`. Emits {RoundRefunded} per funder with a
     * non-zero credit, then {RoundSwept}.
     */
    function sweep(uint256 roundId) external;

    // --- pause ----------------------------------------------------------------------------

    /**
     * @notice Stop the money paths: deposits, withdrawal requests and withdrawals, proposals,
     * finalizations, claims and sweeps. Challenges, resolutions, cancels and views still work.
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

    // --- views ----------------------------------------------------------------------------

    /// @notice Round `roundId` (all zero, status None, when the id is unused).
    function round(uint256 roundId) external view returns (Round memory);

    /// @notice What round `roundId` took from `account` at propose (0 if none).
    function debitOf(uint256 roundId, address account) external view returns (uint256);

    /// @notice The debits of round `roundId`, accounts ascending (as proposed).
    function funders(uint256 roundId) external view returns (Debit[] memory);

    /// @notice End of the periods settled or pending: the earliest `periodStart` of the next round.
    function settledUntil() external view returns (uint64);

    /// @notice The round that is Proposed or Disputed, if any (`pending` false: none).
    function pendingRound() external view returns (bool pending, uint256 roundId);

    /// @notice Whether payout `index` of round `roundId` was claimed (false unless the round is
    /// Finalized or Closed).
    function isClaimed(uint256 roundId, uint256 index) external view returns (bool);

    /// @notice `account`'s free balance: deposited, not debited by a round, not withdrawn.
    function balanceOf(address account) external view returns (uint256);

    /// @notice `account`'s withdrawal request (`(0, 0)`: none).
    function pendingWithdrawal(address account) external view returns (uint256 amount, uint64 availableAt);

    /// @notice Sum of all free balances.
    function unallocated() external view returns (uint256);

    /// @notice The settlement token (fixed at deployment).
    function token() external view returns (IERC20);

    /// @notice The ParticipantRegistry that holds every role of the deployment.
    function registry() external view returns (IParticipantRegistry);

    /// @notice The EvidenceLedger whose checkpoints rounds refer to.
    function ledger() external view returns (IEvidenceLedger);

    /// @notice Seconds between propose and the earliest finalize (0 allowed, for tests).
    function challengeWindow() external view returns (uint64);

    /// @notice Seconds after finalize from which the operator may sweep.
    function claimExpiry() external view returns (uint64);

    /// @notice Seconds between a withdrawal request and the earliest withdraw.
    function withdrawalDelay() external view returns (uint64);
}
