// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.11;

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
 * @notice ERC-20 escrow for Tally's settlement rounds (see {ISettlementVault} for the calls).
 * Roles come from the {ParticipantRegistry}: `OPERATOR_ROLE` proposes, cancels and sweeps;
 * `ARBITER_ROLE` resolves disputes; `AUDITOR_ROLE` (or a funder or payee of the round)
 * challenges; `DEFAULT_ADMIN_ROLE` pauses and unpauses.
 *
 * The rules, and why:
 * - Money is per depositor. A round names its funders and takes each debit from that account's
 *   free balance, so the operator cannot pay one consumer's usage with another consumer's
 *   deposit; a cancelled round refunds each debit to its funder, a swept one returns what was
 *   not paid pro rata to the debits.
 * - Withdrawal with notice. A consumer's deposit pays for usage it consumed before the usage is
 *   billed; if it could withdraw at once, it could pull the money the moment before the round
 *   that bills it is proposed. {requestWithdrawal} starts a notice of `withdrawalDelay` seconds
 *   during which the money stays debitable: the operator has one settlement cycle to bill it.
 * - One timeline of periods, one pending round. Rounds settle consecutive, non-overlapping
 *   periods of the whole space (`periodStart >= settledUntil()`), so no usage is billed twice;
 *   and at most one round is Proposed or Disputed at a time, so the pending round is always the
 *   latest and cancelling it rolls `settledUntil()` back to exactly its `periodStart` (with two
 *   pending rounds, cancelling the earlier one would leave a hole behind the later one).
 * - Standing and an arbiter. A challenge stops finalization, so letting anyone challenge would
 *   let anyone hold every round hostage. Only parties with standing may challenge: an auditor,
 *   a consumer the round debits, or a payee of the round (it proves its own leaf), each once
 *   per round. A challenge does not cancel by itself: a holder of `ARBITER_ROLE` rules on it.
 *   Upheld cancels the round (the only way to cancel after the window); rejected puts it back
 *   to Proposed with the same deadline, so a challenge without merit delays a correct round by
 *   the arbiter's response time at most, and the round finalizes once its window is over.
 *   One role rather than an on-chain k-of-n quorum: a quorum is a policy, and a multisig
 *   contract holding the role gives it without the vault carrying vote bookkeeping.
 * - The operator can cancel only during the window: after it, a round that nobody disputed
 *   is what the funders and payees accepted, and only an upheld dispute undoes it.
 * - Payout cap. Each claim adds its amount to the round's `paid` and reverts when that would
 *   pass `total`, so a payout tree whose leaves add up to more than the debits can never draw
 *   on other rounds' money; {sweep} returns `total - paid` after the claim period.
 *
 * Claim gas. A claim is the one call made once per payee, so its storage access is counted:
 * - The claimed bitmap (256 payouts per word, as in Uniswap's merkle-distributor) is keyed by
 *   round id AND payout root: word `index >> 8` of round `roundId` under root `root` lives at
 *   slot `keccak256(roundId, root, index >> 8, _CLAIMED_WORDS)` ({_claimedWord}: one hash where
 *   a nested mapping would take three). A claim recomputes the root from its proof and reads
 *   the word under that root. A word is only ever written after its root was checked to be the
 *   round's payout root, so a non-zero word proves it and the claim skips reading the root
 *   (a cold read, 2,100 gas); only the first claim of each word (1 in 256) reads it.
 * - `total`, `paid` and `status` share one slot ({Round}): a claim reads it (status Finalized?
 *   room under the total?) and writes `paid` back: one cold read and one non-zero to non-zero
 *   write, 2,100 + 2,900 gas, the price of the payout cap (measured by scripts/gas_table.py on
 *   a 1,000-payee round: 78,457 gas a claim on average, 5,273 more than without the cap; a
 *   minimal single-root distributor: 70,479). No layout makes it cheaper: the cap
 *   needs a round-wide sum updated by every claim, which is one written slot besides the
 *   bitmap word; a slot shared with the bitmap would leave 256 payees per word no room for a
 *   sum, and a sum per word could not bound the round's total. The status costs nothing extra
 *   in that slot, which is why it is there and not next to the timestamps.
 * - The pause flag is OpenZeppelin Pausable's own slot: one more cold read (~2,100 gas). It
 *   cannot share a slot a claim reads anyway: the round slot is per round, the pause global.
 *
 * Reentrancy: no ReentrancyGuard (it would cost ~2,400 gas a claim). Every function completes its
 * checks and storage effects before its single token call (checks-effects-interactions): a claim
 * sets its bit and its paid sum before the transfer, so a re-entrant claim of the same payout
 * reverts with {SettlementVaultAlreadyClaimed}, and no function reads state that a re-entrant
 * call could leave half-updated. The token is fixed at deployment and must be a plain ERC-20
 * (no fee on transfer, no rebasing); SafeERC20 handles tokens that return no boolean.
 */
contract SettlementVault is ISettlementVault, Pausable {
    using SafeERC20 for IERC20;

    /// @inheritdoc ISettlementVault
    IERC20 public immutable token;
    /// @inheritdoc ISettlementVault
    IParticipantRegistry public immutable registry;
    /// @inheritdoc ISettlementVault
    IEvidenceLedger public immutable ledger;
    /// @inheritdoc ISettlementVault
    uint64 public immutable challengeWindow;
    /// @inheritdoc ISettlementVault
    uint64 public immutable claimExpiry;
    /// @inheritdoc ISettlementVault
    uint64 public immutable withdrawalDelay;

    /// @dev Where {Round}'s `total | paid << 120 | status << 240` slot sits in the struct (after
    /// `payoutRoot` and `policyHash`; Solidity packs the three in declaration order).
    uint256 private constant _AMOUNTS_SLOT = 2;
    uint256 private constant _PAID_SHIFT = 120;
    uint256 private constant _STATUS_SHIFT = 240;
    uint256 private constant _UINT120 = 0xffffffffffffffffffffffffffffff; // type(uint120).max

    /// @dev Namespace of the claimed-bitmap words (see {_claimedWord}).
    bytes32 private constant _CLAIMED_WORDS = keccak256("tally.SettlementVault.claimedWords");

    /// @dev A withdrawal request: `amount` may be paid from `availableAt` on.
    struct WithdrawalRequest {
        uint256 amount;
        uint64 availableAt;
    }

    uint256 private _unallocated; // sum of all free balances
    mapping(address => uint256) private _balances; // by account
    mapping(address => WithdrawalRequest) private _withdrawals; // by account

    mapping(uint256 => Round) private _rounds; // by round id
    mapping(uint256 => address[]) private _funders; // by round id: ascending, as proposed
    mapping(uint256 => mapping(address => uint256)) private _debits; // by round id, account
    mapping(uint256 => mapping(address => bool)) private _challenged; // by round id, account

    uint64 private _settledUntil;
    bool private _hasPending;
    uint256 private _pendingId;

    modifier onlyRegistryRole(bytes32 role) {
        if (!registry.hasRole(role, msg.sender)) revert SettlementVaultUnauthorizedAccount(msg.sender, role);
        _;
    }

    /**
     * @param token_ the settlement token: a plain ERC-20, trusted (see the contract notes).
     * @param registry_ the ParticipantRegistry (roles and participants).
     * @param ledger_ the EvidenceLedger (checkpoints that rounds cite).
     * @param challengeWindow_ seconds a proposed round can be challenged (and cancelled).
     * @param claimExpiry_ seconds after finalize from which the operator may sweep.
     * @param withdrawalDelay_ seconds of notice before a requested withdrawal can be made; at
     * least one settlement cycle of the deployment (plus the time to correct a cancelled round).
     */
    constructor(
        IERC20 token_,
        IParticipantRegistry registry_,
        IEvidenceLedger ledger_,
        uint64 challengeWindow_,
        uint64 claimExpiry_,
        uint64 withdrawalDelay_
    ) {
        if (address(token_) == address(0) || address(registry_) == address(0) || address(ledger_) == address(0)) {
            revert SettlementVaultZeroAddress();
        }
        token = token_;
        registry = registry_;
        ledger = ledger_;
        challengeWindow = challengeWindow_;
        claimExpiry = claimExpiry_;
        withdrawalDelay = withdrawalDelay_;
    }

    // --- deposits and withdrawals -------------------------------------------------------

    /// @inheritdoc ISettlementVault
    function deposit(uint256 amount) external whenNotPaused {
        _deposit(msg.sender, amount);
    }

    /// @inheritdoc ISettlementVault
    function depositFor(address account, uint256 amount) external whenNotPaused {
        if (account == address(0)) revert SettlementVaultZeroAccount();
        _deposit(account, amount);
    }

    /// @inheritdoc ISettlementVault
    function requestWithdrawal(uint256 amount) external whenNotPaused {
        if (amount == 0) {
            delete _withdrawals[msg.sender];
            emit WithdrawalRequested(msg.sender, 0, 0);
            return;
        }
        uint64 availableAt = SafeCast.toUint64(block.timestamp + withdrawalDelay);
        _withdrawals[msg.sender] = WithdrawalRequest(amount, availableAt);
        emit WithdrawalRequested(msg.sender, amount, availableAt);
    }

    /// @inheritdoc ISettlementVault
    function withdraw() external whenNotPaused {
        WithdrawalRequest memory req = _withdrawals[msg.sender];
        if (req.amount == 0) revert SettlementVaultNoWithdrawalRequest(msg.sender);
        if (block.timestamp < req.availableAt) revert SettlementVaultWithdrawalNotReady(msg.sender, req.availableAt);
        uint256 free = _balances[msg.sender];
        uint256 amount = req.amount < free ? req.amount : free;
        if (amount == 0) revert SettlementVaultNothingToWithdraw(msg.sender);

        // Clear the request and debit the balance, then pay.
        delete _withdrawals[msg.sender];
        _balances[msg.sender] = free - amount;
        _unallocated -= amount;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // --- rounds -------------------------------------------------------------------------

    /// @inheritdoc ISettlementVault
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
    ) external onlyRegistryRole(TallyRoles.OPERATOR_ROLE) whenNotPaused {
        // Check and record the round, then take each debit from its account's free balance.
        Round storage r = _open(roundId, payoutRoot, total, evidenceSeq, policyHash, periodStart, periodEnd);
        if (debits.length == 0) revert SettlementVaultNoDebits();
        r.statementURI = statementURI;
        _takeDebits(roundId, total, debits);
    }

    /// @inheritdoc ISettlementVault
    function challenge(
        uint256 roundId,
        bytes32 findingHash,
        uint256 index,
        uint256 amount,
        bytes32[] calldata proof
    ) external {
        Round storage r = _rounds[roundId];
        if (r.status != RoundStatus.Proposed) revert SettlementVaultRoundNotProposed(roundId, r.status);
        if (block.timestamp >= r.challengeDeadline) {
            revert SettlementVaultChallengeWindowClosed(roundId, r.challengeDeadline);
        }
        if (!_hasStanding(r, roundId, index, amount, proof)) revert SettlementVaultNoStanding(roundId, msg.sender);
        if (_challenged[roundId][msg.sender]) revert SettlementVaultAlreadyChallenged(roundId, msg.sender);

        _challenged[roundId][msg.sender] = true;
        r.status = RoundStatus.Disputed;
        emit RoundChallenged(roundId, msg.sender, findingHash);
    }

    /// @inheritdoc ISettlementVault
    function resolve(
        uint256 roundId,
        bool upheld,
        bytes32 rulingHash
    ) external onlyRegistryRole(TallyRoles.ARBITER_ROLE) {
        Round storage r = _rounds[roundId];
        if (r.status != RoundStatus.Disputed) revert SettlementVaultRoundNotDisputed(roundId, r.status);

        emit DisputeResolved(roundId, msg.sender, upheld, rulingHash);
        if (upheld) {
            _cancel(r, roundId);
        } else {
            r.status = RoundStatus.Proposed; // same deadline
        }
    }

    /// @inheritdoc ISettlementVault
    function cancel(uint256 roundId) external onlyRegistryRole(TallyRoles.OPERATOR_ROLE) {
        Round storage r = _rounds[roundId];
        RoundStatus status = r.status;
        if (status != RoundStatus.Proposed && status != RoundStatus.Disputed) {
            revert SettlementVaultRoundNotCancellable(roundId, status);
        }
        if (block.timestamp >= r.challengeDeadline) {
            revert SettlementVaultChallengeWindowClosed(roundId, r.challengeDeadline);
        }
        _cancel(r, roundId);
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
        _hasPending = false;
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
        // Check, mark claimed and add to the paid sum, then pay.
        _markClaimed(roundId, index, account, amount, proof);
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
    function sweep(uint256 roundId) external onlyRegistryRole(TallyRoles.OPERATOR_ROLE) whenNotPaused {
        Round storage r = _rounds[roundId];
        if (r.status != RoundStatus.Finalized) revert SettlementVaultRoundNotFinalized(roundId, r.status);
        uint256 sweepableAt = uint256(r.finalizedAt) + claimExpiry;
        if (block.timestamp < sweepableAt) revert SettlementVaultClaimPeriodNotOver(roundId, sweepableAt);

        // Close the round, then credit each funder its share of what was not paid.
        uint256 total = r.total;
        uint256 rest = total - r.paid;
        r.status = RoundStatus.Closed;
        if (rest != 0) {
            address[] storage funderList = _funders[roundId];
            mapping(address => uint256) storage debitOf_ = _debits[roundId];
            uint256 n = funderList.length;
            // floor(debit * rest / total) each; the remainder is below n (each floor loses < 1).
            uint256 remainder = rest;
            for (uint256 i = 0; i < n; ++i) {
                remainder -= (debitOf_[funderList[i]] * rest) / total;
            }
            for (uint256 i = 0; i < n; ++i) {
                address account = funderList[i];
                uint256 share = (debitOf_[account] * rest) / total;
                if (i < remainder) ++share; // one unit each to the first funders, ascending
                if (share != 0) {
                    _balances[account] += share;
                    emit RoundRefunded(roundId, account, share);
                }
            }
            _unallocated += rest;
        }
        emit RoundSwept(roundId, rest);
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
    function debitOf(uint256 roundId, address account) external view returns (uint256) {
        return _debits[roundId][account];
    }

    /// @inheritdoc ISettlementVault
    function funders(uint256 roundId) external view returns (Debit[] memory out) {
        address[] storage funderList = _funders[roundId];
        out = new Debit[](funderList.length);
        for (uint256 i = 0; i < out.length; ++i) {
            address account = funderList[i];
            out[i] = Debit(account, _debits[roundId][account]);
        }
    }

    /// @inheritdoc ISettlementVault
    function settledUntil() external view returns (uint64) {
        return _settledUntil;
    }

    /// @inheritdoc ISettlementVault
    function pendingRound() external view returns (bool pending, uint256 roundId) {
        pending = _hasPending;
        roundId = pending ? _pendingId : 0;
    }

    /// @inheritdoc ISettlementVault
    function isClaimed(uint256 roundId, uint256 index) external view returns (bool) {
        Round storage r = _rounds[roundId];
        if (r.status != RoundStatus.Finalized && r.status != RoundStatus.Closed) return false;
        return _claimedWord(roundId, r.payoutRoot, index >> 8).value & (1 << (index & 0xff)) != 0;
    }

    /// @inheritdoc ISettlementVault
    function balanceOf(address account) external view returns (uint256) {
        return _balances[account];
    }

    /// @inheritdoc ISettlementVault
    function pendingWithdrawal(address account) external view returns (uint256 amount, uint64 availableAt) {
        WithdrawalRequest storage req = _withdrawals[account];
        return (req.amount, req.availableAt);
    }

    /// @inheritdoc ISettlementVault
    function unallocated() external view returns (uint256) {
        return _unallocated;
    }

    // --- internals ----------------------------------------------------------------------

    /// @dev Credit `amount` to `account`'s free balance, then pull it from the caller (reverts as
    /// a whole if the transfer fails).
    function _deposit(address account, uint256 amount) private {
        if (amount == 0) revert SettlementVaultZeroAmount();
        _balances[account] += amount;
        _unallocated += amount;
        emit Deposited(account, msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @dev {propose}'s checks up to the debits, then the round recorded (all but its statement
    /// URI) and announced; the new round is the pending one and `settledUntil` its end.
    function _open(
        uint256 roundId,
        bytes32 payoutRoot,
        uint256 total,
        uint256 evidenceSeq,
        bytes32 policyHash,
        uint64 periodStart,
        uint64 periodEnd
    ) private returns (Round storage r) {
        r = _rounds[roundId];
        if (r.status != RoundStatus.None) revert SettlementVaultRoundExists(roundId);
        if (payoutRoot == bytes32(0)) revert SettlementVaultZeroPayoutRoot();
        if (total == 0) revert SettlementVaultZeroAmount();
        if (total > type(uint120).max) revert SettlementVaultTotalTooLarge(total, type(uint120).max);
        uint256 checkpoints = ledger.count();
        if (evidenceSeq >= checkpoints) revert SettlementVaultUnknownCheckpoint(evidenceSeq, checkpoints);
        if (periodStart >= periodEnd) revert SettlementVaultInvalidPeriod(periodStart, periodEnd);
        if (_hasPending) revert SettlementVaultRoundPending(_pendingId);
        if (periodStart < _settledUntil) revert SettlementVaultPeriodOverlap(roundId, periodStart, _settledUntil);

        uint64 deadline = SafeCast.toUint64(block.timestamp + challengeWindow);
        r.payoutRoot = payoutRoot;
        r.policyHash = policyHash;
        r.total = uint120(total);
        r.status = RoundStatus.Proposed;
        r.evidenceSeq = uint64(evidenceSeq); // < checkpoints, which a uint64 holds
        r.challengeDeadline = deadline;
        r.periodStart = periodStart;
        r.periodEnd = periodEnd;
        _settledUntil = periodEnd;
        _hasPending = true;
        _pendingId = roundId;
        emit RoundProposed(roundId, payoutRoot, total, evidenceSeq, policyHash, periodStart, periodEnd, deadline);
    }

    /// @dev {propose}'s debits: accounts non-zero and strictly ascending, each amount positive
    /// and within the account's free balance, taken from it and recorded; their sum `total`.
    function _takeDebits(uint256 roundId, uint256 total, Debit[] calldata debits) private {
        address[] storage funderList = _funders[roundId];
        mapping(address => uint256) storage debitOf_ = _debits[roundId];
        address previous = address(0);
        uint256 sum;
        for (uint256 i = 0; i < debits.length; ++i) {
            address account = debits[i].account;
            uint256 amount = debits[i].amount;
            if (account <= previous) revert SettlementVaultDebitsNotAscending(previous, account);
            if (amount == 0) revert SettlementVaultZeroDebit(account);
            uint256 free = _balances[account];
            if (amount > free) revert SettlementVaultInsufficientBalance(account, amount, free);
            sum += amount; // no overflow: distinct accounts' balances, all within _unallocated
            _balances[account] = free - amount;
            funderList.push(account);
            debitOf_[account] = amount;
            emit RoundDebited(roundId, account, amount);
            previous = account;
        }
        if (sum != total) revert SettlementVaultDebitsMismatch(sum, total);
        _unallocated -= total;
    }

    /// @dev Whether the caller may challenge round `roundId`: a funder of it, an auditor, or
    /// the payee of leaf `(roundId, index, caller, amount)` proven by `proof`.
    function _hasStanding(
        Round storage r,
        uint256 roundId,
        uint256 index,
        uint256 amount,
        bytes32[] calldata proof
    ) private view returns (bool) {
        if (_debits[roundId][msg.sender] != 0) return true;
        if (registry.hasRole(TallyRoles.AUDITOR_ROLE, msg.sender)) return true;
        return MerkleProof.verifyCalldata(proof, r.payoutRoot, _leaf(roundId, index, msg.sender, amount));
    }

    /// @dev Cancel the pending round `roundId`: refund each debit to its funder, roll
    /// `settledUntil` back to the round's `periodStart` and clear the pending round.
    function _cancel(Round storage r, uint256 roundId) private {
        r.status = RoundStatus.Cancelled;
        _settledUntil = r.periodStart;
        _hasPending = false;
        address[] storage funderList = _funders[roundId];
        mapping(address => uint256) storage debitOf_ = _debits[roundId];
        uint256 n = funderList.length;
        for (uint256 i = 0; i < n; ++i) {
            address account = funderList[i];
            uint256 amount = debitOf_[account];
            _balances[account] += amount;
            emit RoundRefunded(roundId, account, amount);
        }
        _unallocated += r.total;
        emit RoundCancelled(roundId);
    }

    /**
     * @dev Check a claim of payout `index` of round `roundId`, set its claimed bit and add its
     * amount to the round's paid sum. The word is read under the root that `proof` leads to;
     * when that word is still zero, nothing proves yet that this root is the round's, so the
     * root is read and compared (see the contract notes).
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
        // The round's total, paid and status: one slot, read once, written once (the struct's
        // third slot: see _AMOUNTS_SLOT).
        uint256 slot;
        uint256 packed;
        /// @solidity memory-safe-assembly
        assembly {
            mstore(0x00, roundId)
            mstore(0x20, _rounds.slot)
            slot := add(keccak256(0x00, 0x40), _AMOUNTS_SLOT)
            packed := sload(slot)
        }
        uint256 status = packed >> _STATUS_SHIFT; // the top 8 bits are unused
        if (status != uint256(RoundStatus.Finalized)) {
            revert SettlementVaultRoundNotFinalized(roundId, RoundStatus(status));
        }
        if (bits == 0 && _rounds[roundId].payoutRoot != root) {
            revert SettlementVaultInvalidProof(roundId, index, account, amount);
        }
        uint256 total = packed & _UINT120;
        uint256 paid = (packed >> _PAID_SHIFT) & _UINT120;
        unchecked {
            // paid <= total always, so neither the subtraction nor the sum after it overflows
            if (amount > total - paid) revert SettlementVaultPayoutExceedsTotal(roundId, paid + amount, total);
            paid += amount;
        }
        /// @solidity memory-safe-assembly
        assembly {
            sstore(slot, or(and(packed, not(shl(_PAID_SHIFT, _UINT120))), shl(_PAID_SHIFT, paid)))
        }
        word.value = bits | bit;
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
        /// @solidity memory-safe-assembly
        assembly {
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
