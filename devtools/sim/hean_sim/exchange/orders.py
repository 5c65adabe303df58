"""Orders, fills and matching against the replayed market, all in exact `Decimal`.

The model (what a strategy rehearsing a live config needs, no more):

- A MARKET order fills its whole quantity at once, as taker, at the current
  price (`MarketState.last_price`); with `quoteOrderQty` the quantity is the
  most whole steps that the amount buys at that price.
- A LIMIT order that is marketable (buy at or above the current price, sell
  at or below) fills at once, as taker, at the current price. Otherwise it
  rests, locking what it may spend (quote = price x quantity for a buy, the
  base quantity for a sell), and fills whole, as maker, at its own price, as
  soon as the market's price path trades strictly through it (a buy when the
  price goes below its limit, a sell when it goes above). IOC and FOK orders
  that are not marketable expire; LIMIT_MAKER orders that are, are rejected.
- Matching is lazy but exact: `sync()` (run before every request and every
  inspection) walks the price path revealed since the last sync
  (`MarketState.price_steps`) and fills each resting order at the first point
  that goes through it, time-stamped with that point's market time.
- Money: notional = price x quantity, never rounded. Commission = notional
  (sells, in the quote asset) or quantity (buys, in the base asset) x the
  maker or taker rate, rounded half-even to eight decimals, and deducted from
  what the account receives exactly as reported, as on Binance without BNB.

Order and trade times are served market time (the klines' clock); Binance's
`serverTime` (wall time) is only used for signatures. Ids count up from 1 per
simulator, shared by all accounts as Binance's are per symbol.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from hean_sim.exchange import errors
from hean_sim.exchange.accounts import Account
from hean_sim.exchange.config import ApiKey, SimConfig
from hean_sim.exchange.filters import SymbolFilters
from hean_sim.exchange.market import MarketState
from hean_sim.exchange.model import AccountTrade, Order, OrderType, Side, Status
from hean_sim.exchange.numbers import ZERO, rounded

MAX_OPEN_ORDERS = 200  # the MAX_NUM_ORDERS filter exchangeInfo publishes
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class OrderRequest:
    """A validated `POST /api/v3/order` (parameter syntax is checked by the API layer)."""

    side: Side
    type: OrderType
    time_in_force: str  # GTC / IOC / FOK; GTC for MARKET and LIMIT_MAKER, as Binance reports
    quantity: Decimal | None
    quote_order_qty: Decimal | None
    price: Decimal | None
    client_order_id: str | None


class OrderEngine:
    """Every account's orders on the one simulated symbol, and their matching."""

    def __init__(self, market: MarketState, config: SimConfig) -> None:
        self.market = market
        self.config = config
        self.filters: SymbolFilters = market.filters
        self.base = config.base_asset
        self.quote = config.quote_asset
        self.accounts: dict[str, Account] = {}
        # Every open order, by id: only resting limit orders stay open (market
        # and marketable orders fill at once, IOC/FOK ones expire).
        self._resting: dict[int, tuple[Account, Order]] = {}
        self._next_order_id = 1
        self._next_trade_id = 1
        self._matched_to = market.data_now_ms()
        # Generated client order ids need only be unlikely to repeat; a fixed
        # seed keeps runs (and tests) reproducible.
        self._ids = random.Random(0)

    # -- accounts -----------------------------------------------------------

    def add_account(self, key: ApiKey, balances: dict[str, Decimal] | None = None) -> Account:
        if key.api_key in self.accounts:
            raise ValueError("an account with this API key exists already")
        account = Account(key)
        starting = self.config.starting_balances() if balances is None else balances
        for asset in (self.base, self.quote):
            account.free.setdefault(asset, ZERO)
            account.locked.setdefault(asset, ZERO)
        for asset, amount in starting.items():
            if amount < 0:
                raise ValueError(f"{asset}: a starting balance cannot be negative")
            account.free[asset.upper()] = amount
            account.locked.setdefault(asset.upper(), ZERO)
        account.update_time = self.market.now_ms()
        self.accounts[key.api_key] = account
        return account

    def new_client_id(self) -> str:
        """An id like the ones Binance generates (22 letters and digits)."""
        return "".join(self._ids.choice(_ID_ALPHABET) for _ in range(22))

    # -- matching -----------------------------------------------------------

    def sync(self) -> int:
        """Fill resting orders the market went through since the last sync; data time now."""
        now = self.market.data_now_ms()
        if now > self._matched_to:
            if self._resting:
                self._match(self._matched_to, now)
            self._matched_to = now
        return now

    def _bounds(self) -> tuple[Decimal | None, Decimal | None]:
        """(highest resting buy limit, lowest resting sell limit)."""
        buys = [o.price for _, o in self._resting.values() if o.side is Side.BUY]
        sells = [o.price for _, o in self._resting.values() if o.side is Side.SELL]
        return (max(buys) if buys else None, min(sells) if sells else None)

    def _match(self, after: int, upto: int) -> None:
        best_buy, best_sell = self._bounds()
        offset = self.market.offset_ms
        for t, price in self.market.price_steps(after, upto):
            through_buy = best_buy is not None and price < best_buy
            through_sell = best_sell is not None and price > best_sell
            if not (through_buy or through_sell):
                continue
            for account, order in list(self._resting.values()):
                crossed = price < order.price if order.side is Side.BUY else price > order.price
                if crossed:
                    self._fill(account, order, order.remaining, order.price, True, t + offset)
            if not self._resting:
                return
            best_buy, best_sell = self._bounds()

    # -- fills --------------------------------------------------------------

    def _fill(
        self,
        account: Account,
        order: Order,
        qty: Decimal,
        price: Decimal,
        maker: bool,
        time: int,
    ) -> AccountTrade:
        """Book a fill of `qty` at `price`: balances, the order, the account's trades."""
        notional = price * qty
        rate = self.config.maker_fee if maker else self.config.taker_fee
        resting = order.order_id in self._resting
        if order.side is Side.BUY:
            commission, commission_asset = rounded(qty * rate), self.base
            if resting:
                account.spend_locked(self.quote, notional, time)
                order.locked -= notional
            else:
                account.debit(self.quote, notional, time)
            account.credit(self.base, qty - commission, time)
        else:
            commission, commission_asset = rounded(notional * rate), self.quote
            if resting:
                account.spend_locked(self.base, qty, time)
                order.locked -= qty
            else:
                account.debit(self.base, qty, time)
            account.credit(self.quote, notional - commission, time)
        trade = AccountTrade(
            id=self._next_trade_id,
            order_id=order.order_id,
            price=price,
            qty=qty,
            quote_qty=notional,
            commission=commission,
            commission_asset=commission_asset,
            time=time,
            is_buyer=order.side is Side.BUY,
            is_maker=maker,
        )
        self._next_trade_id += 1
        order.executed_qty += qty
        order.cummulative_quote_qty += notional
        order.fills.append(trade)
        order.update_time = time
        if order.executed_qty == order.orig_qty:
            order.status = Status.FILLED
            self._resting.pop(order.order_id, None)
        else:
            order.status = Status.PARTIALLY_FILLED
        account.trades.append(trade)
        return trade

    # -- placing ------------------------------------------------------------

    def place(self, account: Account, request: OrderRequest) -> Order:
        """Validate and execute a new order; raises `BinanceError` when Binance would refuse."""
        now = self.sync()
        current = self.market.price_at(now)
        served = now + self.market.offset_ms
        qty = self._quantity(request, current)
        limit = request.price if request.type is not OrderType.MARKET else None
        self._check_filters(request.type, limit, qty, current)
        if len(self.open_orders(account)) >= MAX_OPEN_ORDERS:
            raise errors.filter_failure("MAX_NUM_ORDERS")
        client_id = request.client_order_id or self.new_client_id()
        if any(o.client_order_id == client_id for o in self.open_orders(account)):
            raise errors.order_rejected(errors.DUPLICATE_ORDER_MSG)
        marketable = limit is None or (
            limit >= current if request.side is Side.BUY else limit <= current
        )
        if request.type is OrderType.LIMIT_MAKER and marketable:
            raise errors.order_rejected(errors.WOULD_TAKE_MSG)
        self._check_funds(account, request.side, qty, limit if limit is not None else current)
        order = Order(
            order_id=self._next_order_id,
            client_order_id=client_id,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            price=limit if limit is not None else ZERO,
            orig_qty=qty,
            orig_quote_qty=request.quote_order_qty or ZERO,
            time=served,
            update_time=served,
        )
        self._next_order_id += 1
        account.orders[order.order_id] = order
        if marketable:
            self._fill(account, order, qty, current, False, served)
        elif request.time_in_force in ("IOC", "FOK"):
            order.status = Status.EXPIRED
        else:
            self._rest(account, order, served)
        return order

    def _quantity(self, request: OrderRequest, current: Decimal) -> Decimal:
        if request.quantity is not None:
            return request.quantity
        assert request.quote_order_qty is not None  # the API layer requires one of the two
        steps = (request.quote_order_qty / current / self.filters.step_size).to_integral_value(
            ROUND_FLOOR
        )
        return steps * self.filters.step_size

    def _check_filters(
        self, order_type: OrderType, limit: Decimal | None, qty: Decimal, current: Decimal
    ) -> None:
        """Binance's symbol filters, in Binance's order: price, lot size, notional."""
        f = self.filters
        if limit is not None and (
            limit < f.min_price or limit > f.max_price or (limit - f.min_price) % f.tick_size
        ):
            raise errors.filter_failure("PRICE_FILTER")
        if qty < f.min_qty or qty > f.max_qty or (qty - f.min_qty) % f.step_size:
            raise errors.filter_failure("LOT_SIZE")
        # Market orders are valued at the current price (Binance uses its
        # 5-minute average price; the two differ little in a replay).
        notional = (limit if limit is not None else current) * qty
        if notional < f.min_notional:
            raise errors.filter_failure(f.notional_filter)
        # NOTIONAL's maximum has applyMaxToMarket false: limit orders only.
        if f.notional_filter == "NOTIONAL" and limit is not None and notional > f.max_notional:
            raise errors.filter_failure("NOTIONAL")

    def _check_funds(self, account: Account, side: Side, qty: Decimal, price: Decimal) -> None:
        # Buys pay their commission out of what they receive, so a buy needs
        # only price x quantity of the quote asset; a sell needs the quantity.
        if side is Side.BUY:
            enough = account.has_free(self.quote, price * qty)
        else:
            enough = account.has_free(self.base, qty)
        if not enough:
            raise errors.order_rejected(errors.INSUFFICIENT_BALANCE_MSG)

    def _rest(self, account: Account, order: Order, now: int) -> None:
        if order.side is Side.BUY:
            order.locked = order.price * order.orig_qty
            account.lock(self.quote, order.locked, now)
        else:
            order.locked = order.orig_qty
            account.lock(self.base, order.locked, now)
        self._resting[order.order_id] = (account, order)

    # -- cancelling ---------------------------------------------------------

    def cancel(self, account: Account, order: Order) -> Order:
        """Cancel an open order (raises -2011 for one that is not open)."""
        now = self.sync()
        if not order.is_open:
            raise errors.unknown_order()
        served = now + self.market.offset_ms
        asset = self.quote if order.side is Side.BUY else self.base
        if order.locked:
            account.unlock(asset, order.locked, served)
            order.locked = ZERO
        order.status = Status.CANCELED
        order.update_time = served
        self._resting.pop(order.order_id, None)
        return order

    def fill(self, account: Account, order: Order, qty: Decimal | None = None) -> Order:
        """Fill (part of) a resting order now at its limit price, as maker (a test hook)."""
        self.sync()
        if order.order_id not in self._resting:
            raise ValueError(f"order {order.order_id} is not resting (status {order.status})")
        qty = order.remaining if qty is None else qty
        if not ZERO < qty <= order.remaining:
            raise ValueError(f"qty must be in (0, {order.remaining}], got {qty}")
        self._fill(account, order, qty, order.price, True, self.market.now_ms())
        return order

    # -- lookups ------------------------------------------------------------

    def open_orders(self, account: Account) -> list[Order]:
        """The account's open orders, oldest first."""
        return [order for owner, order in self._resting.values() if owner is account]

    def find(
        self, account: Account, order_id: int | None, client_order_id: str | None
    ) -> Order | None:
        """By orderId (whose client id must then match, if given), else the latest
        order with that client id: ids of finished orders can be reused on Binance."""
        if order_id is not None:
            order = account.orders.get(order_id)
            if order is None:
                return None
            if client_order_id is not None and order.client_order_id != client_order_id:
                return None
            return order
        if client_order_id is not None:
            for order in reversed(account.orders.values()):
                if order.client_order_id == client_order_id:
                    return order
        return None
