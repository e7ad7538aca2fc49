// amqplib (node AMQP 0-9-1 client) against Herald, one scenario per run.
// Usage: node scenario.js AMQP_URL SCENARIO
//   SCENARIO: confirms_prefetch | exchanges | rpc_direct_reply_to | nack_reject_channel_error | mandatory_return
// Prints "amqplib ok: SCENARIO ..." and exits 0 on success; exits 1 with the reason on any failure,
// and 2 if the scenario does not finish within its time limit. Every name is unique per run, so the
// script can run again against the same broker (the reference RabbitMQ keeps durable queues).
'use strict'
const amqp = require('amqplib')

const SCENARIO_LIMIT_MS = 60000
const QUIET_MS = 300 // how long to watch for messages that must not arrive
const SFX = `${process.pid}.${Date.now()}`
const name = base => `herald.amqplib.${base}.${SFX}`

function assert (cond, what) {
  if (!cond) throw new Error('assertion failed: ' + what)
}
function eq (got, want, what) {
  const g = JSON.stringify(got)
  const w = JSON.stringify(want)
  if (g !== w) throw new Error(`assertion failed: ${what}: got ${g}, want ${w}`)
}
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// Resolves when pred() holds (checked every 5 ms), rejects after ms with what + the current state.
async function waitFor (pred, ms, what) {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timeout after ${ms} ms waiting for ${what}`)
    await sleep(5)
  }
}

// Errors an open connection or channel reports on its own (not as a rejected promise) are collected
// here and fail the scenario at the end, unless the scenario expects them.
const unexpected = []
let server = '?'
function watch (what, emitter) {
  emitter.on('error', e => unexpected.push(`${what} error: ${e.message}`))
  return emitter
}
async function connect (url, what) {
  const conn = await amqp.connect(url)
  watch(what, conn)
  conn.on('close', () => { conn.closedAt = Date.now() })
  const sp = conn.connection.serverProperties || {}
  server = `${sp.product} ${sp.version}`
  // What these scenarios rely on (publisher confirms, nack, consumer cancel notify, direct reply-to).
  const caps = sp.capabilities || {}
  for (const c of ['publisher_confirms', 'basic.nack', 'consumer_cancel_notify', 'direct_reply_to']) {
    assert(caps[c] === true, `server capability ${c} (got ${JSON.stringify(caps)})`)
  }
  return conn
}

// Publish on a confirm channel and wait for every confirm (so the messages are routed before
// anyone reads the queues).
async function publishConfirmed (ch, list) {
  let acked = 0
  for (const [exchange, key, body, opts] of list) {
    ch.publish(exchange, key, Buffer.from(body), opts || {}, err => {
      if (err) unexpected.push(`publish ${body} nacked`)
      else acked++
    })
  }
  await ch.waitForConfirms()
  eq(acked, list.length, 'publisher confirms received')
}

// Everything in a queue, in order, by basic.get (no-ack) until get-empty.
async function drain (ch, q) {
  const out = []
  for (;;) {
    const m = await ch.get(q, { noAck: true })
    if (m === false) return out
    out.push(m)
    assert(out.length <= 1000, `runaway drain of ${q}`)
  }
}

// 1. ConfirmChannel: durable queue, 1,000 persistent messages confirmed, consumed with prefetch 50
//    and manual acks, all in order exactly once.
async function confirmsPrefetch (url) {
  const N = 1000
  const PREFETCH = 50
  // PLAIN with a wrong password is refused during the handshake (403 ACCESS_REFUSED).
  const bad = new URL(url)
  bad.password = 'wrong-password'
  let refused = null
  try {
    const c = await amqp.connect(bad.toString())
    await c.close()
  } catch (e) {
    refused = e
  }
  assert(refused && /ACCESS.REFUSED|403/.test(refused.message), `a wrong password is refused, got ${refused}`)

  const conn = await connect(url, 'connection')
  const ch = watch('confirm channel', await conn.createConfirmChannel())
  const q = name('durable')
  const ok = await ch.assertQueue(q, { durable: true })
  eq([ok.queue, ok.messageCount, ok.consumerCount], [q, 0, 0], 'queue.declare-ok')

  let confirmed = 0
  for (let i = 0; i < N; i++) {
    ch.sendToQueue(q, Buffer.from(`m${i}`), {
      persistent: true, messageId: `id${i}`, contentType: 'text/plain', headers: { seq: i }
    }, err => {
      if (err) unexpected.push(`message ${i} nacked`)
      else confirmed++
    })
  }
  await ch.waitForConfirms()
  eq(confirmed, N, 'publisher confirms')
  const check = await ch.checkQueue(q)
  eq([check.messageCount, check.consumerCount], [N, 0], 'queue counts after the confirms')

  const cons = watch('consumer channel', await conn.createChannel())
  await cons.prefetch(PREFETCH)
  const got = []
  let unacked = []
  let maxUnacked = 0
  let batches = 0
  const { consumerTag } = await cons.consume(q, msg => {
    assert(msg !== null, 'consumer cancelled by the server')
    got.push(msg)
    unacked.push(msg)
    maxUnacked = Math.max(maxUnacked, unacked.length)
  }, { noAck: false })
  while (got.length < N) {
    await waitFor(() => unacked.length === PREFETCH || got.length === N, 20000,
      `a full prefetch window (have ${got.length} messages, ${unacked.length} unacked)`)
    // The window is full: nothing more may arrive until we ack.
    await sleep(batches < 3 ? QUIET_MS : 20)
    eq(unacked.length, PREFETCH, `unacked after waiting with a full window (batch ${batches})`)
    // Alternate: ack one by one, or the last one with multiple=true.
    if (batches % 2 === 0) for (const m of unacked) cons.ack(m)
    else cons.ack(unacked[unacked.length - 1], true)
    unacked = []
    batches++
  }
  await sleep(QUIET_MS)
  eq(got.length, N, 'deliveries (exactly once)')
  eq(maxUnacked, PREFETCH, 'most unacked deliveries at once')
  for (let i = 0; i < N; i++) {
    const m = got[i]
    eq(m.content.toString(), `m${i}`, `body of delivery ${i}`)
    eq([m.properties.messageId, m.properties.headers.seq, m.properties.deliveryMode, m.properties.contentType],
      [`id${i}`, i, 2, 'text/plain'], `properties of delivery ${i}`)
    eq([m.fields.redelivered, m.fields.exchange, m.fields.routingKey, m.fields.consumerTag],
      [false, '', q, consumerTag], `fields of delivery ${i}`)
    eq(m.fields.deliveryTag, i + 1, `delivery tag ${i}`)
  }
  await cons.cancel(consumerTag)
  const after = await ch.checkQueue(q)
  eq([after.messageCount, after.consumerCount], [0, 0], 'queue counts after consuming')
  const del = await ch.deleteQueue(q)
  eq(del.messageCount, 0, 'queue.delete-ok message count')
  await cons.close()
  await ch.close()
  await conn.close()
  return `${N} confirmed, consumed in order with prefetch ${PREFETCH} (${batches} windows)`
}

// 2. Exchanges: topic with '*' and '#', fanout (with an unbind), headers with x-match any (and all).
async function exchanges (url) {
  const conn = await connect(url, 'connection')
  const ch = watch('confirm channel', await conn.createConfirmChannel())
  const bodies = async q => (await drain(ch, q)).map(m => m.content.toString())
  const anonQueue = async () => {
    const ok = await ch.assertQueue('', { exclusive: true })
    assert(ok.queue.startsWith('amq.gen-'), `server-named queue, got ${ok.queue}`)
    return ok.queue
  }

  // topic
  const topic = name('topic')
  const tok = await ch.assertExchange(topic, 'topic', { durable: false })
  eq(tok.exchange, topic, 'exchange.declare-ok')
  const qStar = await anonQueue()
  const qHash = await anonQueue()
  const qMixed = await anonQueue()
  const qAll = await anonQueue()
  await ch.bindQueue(qStar, topic, 'stock.*.nyse')
  await ch.bindQueue(qHash, topic, 'stock.#')
  await ch.bindQueue(qHash, topic, '#.nyse') // overlaps stock.#: still one copy per queue
  await ch.bindQueue(qMixed, topic, '*.eur.#')
  await ch.bindQueue(qAll, topic, '#')
  const keys = ['stock.usd.nyse', 'stock.eur.nyse', 'stock.nyse', 'stock', 'fx.eur', 'stock.usd.nyse.extra',
    'bond.usd', 'bond.nyse', 'stock..nyse', 'fx.eur.spot.now']
  await publishConfirmed(ch, keys.map(k => [topic, k, `t:${k}`, { contentType: 'text/plain' }]))
  const t = k => `t:${k}`
  const stockHash = await drain(ch, qHash)
  for (const m of stockHash) {
    eq([m.fields.exchange, m.fields.routingKey, m.properties.contentType],
      [topic, m.content.toString().slice(2), 'text/plain'], 'topic delivery fields')
  }
  eq(stockHash.map(m => m.content.toString()),
    ['stock.usd.nyse', 'stock.eur.nyse', 'stock.nyse', 'stock', 'stock.usd.nyse.extra', 'bond.nyse', 'stock..nyse'].map(t),
    "queue bound with 'stock.#' and '#.nyse'")
  eq(await bodies(qStar), ['stock.usd.nyse', 'stock.eur.nyse', 'stock..nyse'].map(t), "queue bound with 'stock.*.nyse'")
  eq(await bodies(qMixed), ['stock.eur.nyse', 'fx.eur', 'fx.eur.spot.now'].map(t), "queue bound with '*.eur.#'")
  eq(await bodies(qAll), keys.map(t), "queue bound with '#'")
  // After an unbind the pattern no longer routes.
  await ch.unbindQueue(qHash, topic, '#.nyse')
  await publishConfirmed(ch, [[topic, 'bond.nyse', 'after-unbind'], [topic, 'stock.x', 'still-bound']])
  eq(await bodies(qHash), ['still-bound'], "queue after unbinding '#.nyse'")
  eq(await bodies(qAll), ['after-unbind', 'still-bound'], "queue bound with '#' after the unbind")

  // fanout: the routing key is ignored; every bound queue gets one copy.
  const fan = name('fanout')
  await ch.assertExchange(fan, 'fanout', { durable: false })
  const f1 = await anonQueue()
  const f2 = await anonQueue()
  const f3 = await anonQueue()
  await ch.bindQueue(f1, fan, '')
  await ch.bindQueue(f2, fan, 'ignored')
  await ch.bindQueue(f3, fan, '')
  await publishConfirmed(ch, [[fan, 'k1', 'fan-1'], [fan, '', 'fan-2']])
  await ch.unbindQueue(f3, fan, '')
  await publishConfirmed(ch, [[fan, 'k3', 'fan-3']])
  eq(await bodies(f1), ['fan-1', 'fan-2', 'fan-3'], 'fanout queue 1')
  eq(await bodies(f2), ['fan-1', 'fan-2', 'fan-3'], 'fanout queue 2')
  eq(await bodies(f3), ['fan-1', 'fan-2'], 'fanout queue 3 (unbound after two)')

  // headers: x-match any and all; the routing key is ignored.
  const hdr = name('headers')
  await ch.assertExchange(hdr, 'headers', { durable: false })
  const hAny = await anonQueue()
  const hAll = await anonQueue()
  await ch.bindQueue(hAny, hdr, '', { 'x-match': 'any', color: 'red', size: 'L' })
  await ch.bindQueue(hAll, hdr, '', { 'x-match': 'all', color: 'red', size: 'L' })
  const hmsgs = [
    ['red-S', { color: 'red', size: 'S' }],
    ['red-L', { color: 'red', size: 'L', extra: 7 }],
    ['blue', { color: 'blue' }],
    ['L-only', { size: 'L' }],
    ['none', {}],
    ['RED', { color: 'RED' }]
  ]
  await publishConfirmed(ch, hmsgs.map(([b, h]) => [hdr, 'any-key', b, { headers: h }]))
  const anyGot = await drain(ch, hAny)
  eq(anyGot.map(m => m.content.toString()), ['red-S', 'red-L', 'L-only'], 'headers x-match any')
  eq(anyGot[1].properties.headers, { color: 'red', size: 'L', extra: 7 }, 'headers carried through')
  eq(await bodies(hAll), ['red-L'], 'headers x-match all')

  for (const x of [topic, fan, hdr]) await ch.deleteExchange(x)
  await ch.close()
  await conn.close()
  return 'topic, fanout and headers routing as expected'
}

// 3. RPC over direct reply-to: the client consumes amq.rabbitmq.reply-to (no-ack) and publishes
//    requests with that reply-to on the same channel; a server on a second connection replies.
async function rpcDirectReplyTo (url) {
  const N = 5
  const serverConn = await connect(url, 'server connection')
  const sch = watch('server channel', await serverConn.createChannel())
  const rpcQ = name('rpc')
  await sch.assertQueue(rpcQ, { durable: false, autoDelete: true })
  const seenReplyTo = []
  await sch.consume(rpcQ, msg => {
    const { replyTo, correlationId } = msg.properties
    seenReplyTo.push(replyTo)
    const n = JSON.parse(msg.content.toString()).n
    sch.sendToQueue(replyTo, Buffer.from(JSON.stringify({ n, square: n * n })),
      { correlationId, contentType: 'application/json' })
    sch.ack(msg)
  }, { noAck: false })

  const clientConn = await connect(url, 'client connection')
  const cch = watch('client channel', await clientConn.createChannel())
  const replies = new Map()
  const { consumerTag } = await cch.consume('amq.rabbitmq.reply-to', msg => {
    assert(msg !== null, 'reply-to consumer cancelled')
    const id = msg.properties.correlationId
    assert(!replies.has(id), `reply ${id} delivered twice`)
    replies.set(id, msg)
  }, { noAck: true })
  for (let i = 0; i < N; i++) {
    cch.sendToQueue(rpcQ, Buffer.from(JSON.stringify({ n: i + 2 })),
      { replyTo: 'amq.rabbitmq.reply-to', correlationId: `corr-${i}` })
  }
  await waitFor(() => replies.size === N, 15000, `${N} replies (have ${replies.size}, server saw ${seenReplyTo.length})`)
  await sleep(QUIET_MS)
  eq(replies.size, N, 'replies (exactly once)')
  for (let i = 0; i < N; i++) {
    const m = replies.get(`corr-${i}`)
    assert(m, `reply corr-${i}`)
    eq(JSON.parse(m.content.toString()), { n: i + 2, square: (i + 2) * (i + 2) }, `reply body corr-${i}`)
    eq([m.properties.contentType, m.fields.consumerTag], ['application/json', consumerTag], `reply corr-${i} properties`)
  }
  eq(seenReplyTo.length, N, 'requests the server saw')
  for (const r of seenReplyTo) {
    assert(typeof r === 'string' && r.startsWith('amq.rabbitmq.reply-to.'),
      `the request's reply-to is rewritten to amq.rabbitmq.reply-to.<id>, got ${JSON.stringify(r)}`)
  }
  await cch.close()
  await clientConn.close()
  await sch.close()
  await serverConn.close()
  return `${N} requests answered through direct reply-to`
}

// 4. nack with requeue -> redelivered; reject without requeue -> gone; a channel error (checkQueue on
//    a missing queue) closes only that channel.
async function nackRejectChannelError (url) {
  const conn = await connect(url, 'connection')
  let connClosed = false
  conn.on('close', () => { connClosed = true })
  const pub = watch('confirm channel', await conn.createConfirmChannel())
  const q = name('nack')
  await pub.assertQueue(q, { durable: false })
  await publishConfirmed(pub, [['', q, 'a'], ['', q, 'b'], ['', q, 'c']])

  const ch = watch('consumer channel', await conn.createChannel())
  await ch.prefetch(1)
  const log = []
  let acted = 0
  await ch.consume(q, msg => {
    assert(msg !== null, 'consumer cancelled by the server')
    const body = msg.content.toString()
    log.push([body, msg.fields.redelivered])
    const seen = log.filter(([b]) => b === body).length
    if (body === 'a' && seen === 1) ch.nack(msg, false, true) // requeue: comes back redelivered
    else if (body === 'b') ch.reject(msg, false) // dropped
    else if (body === 'c' && seen === 1) ch.nack(msg, false, false) // basic.nack without requeue: dropped
    else ch.ack(msg)
    acted++
  }, { noAck: false })
  await waitFor(() => acted >= 4, 10000, `4 deliveries (log ${JSON.stringify(log)})`)
  await sleep(QUIET_MS)
  eq(log, [['a', false], ['a', true], ['b', false], ['c', false]], 'deliveries (body, redelivered)')
  const check = await pub.checkQueue(q)
  eq([check.messageCount, check.consumerCount], [0, 1], 'queue after ack, reject and nack')
  await ch.close()

  // Channel error: queue.declare passive on a missing queue -> channel.close 404.
  const bad = await conn.createChannel()
  const badErrors = []
  bad.on('error', e => badErrors.push(e))
  let badClosed = false
  bad.on('close', () => { badClosed = true })
  const missing = name('missing')
  let err = null
  try {
    await bad.checkQueue(missing)
  } catch (e) {
    err = e
  }
  assert(err !== null, 'checkQueue on a missing queue must reject')
  eq([err.code, err.classId, err.methodId], [404, 50, 10], 'channel.close code, class, method')
  assert(/NOT_FOUND/.test(err.message) && err.message.includes(missing),
    `error names NOT_FOUND and the queue: ${err.message}`)
  await waitFor(() => badClosed, 5000, 'the failed channel to close')
  eq(badErrors.map(e => e.code), [404], "the failed channel's error event")
  let usedClosed = null
  try {
    await bad.checkQueue(q)
  } catch (e) {
    usedClosed = e
  }
  assert(usedClosed && /closed/i.test(usedClosed.message), 'the failed channel is unusable')

  // The connection stays usable on a new channel.
  const again = watch('new channel', await conn.createConfirmChannel())
  await publishConfirmed(again, [['', q, 'after-error']])
  const m = await again.get(q, { noAck: false })
  assert(m !== false, 'basic.get after the channel error')
  eq([m.content.toString(), m.fields.redelivered], ['after-error', false], 'message after the channel error')
  again.ack(m)
  const ok = await again.checkQueue(q)
  eq(ok.messageCount, 0, 'queue after basic.get + ack')
  await again.deleteQueue(q)
  await again.close()
  await pub.close()
  assert(!connClosed, 'the connection stayed open through the channel error')
  await conn.close()
  return 'nack requeue redelivered, reject/nack dropped, 404 closed only its channel'
}

// 5. mandatory publish with no route -> basic.return (before the confirm); routable or
//    non-mandatory messages are not returned.
async function mandatoryReturn (url) {
  const conn = await connect(url, 'connection')
  const ch = watch('confirm channel', await conn.createConfirmChannel())
  const returned = []
  ch.on('return', msg => returned.push(msg))
  const q = name('routable')
  await ch.assertQueue(q, { durable: false, exclusive: true })
  const direct = name('direct')
  await ch.assertExchange(direct, 'direct', { durable: false })
  const lostKey = name('nowhere')

  await publishConfirmed(ch, [
    ['', lostKey, 'lost-default', { mandatory: true, messageId: 'r1', headers: { h: 1 } }],
    ['', q, 'routed', { mandatory: true }],
    [direct, 'no-binding', 'lost-direct', { mandatory: true, messageId: 'r2' }],
    ['', lostKey, 'dropped-silently', { mandatory: false }]
  ])
  // RabbitMQ sends basic.return before the basic.ack of the same message.
  eq(returned.length, 2, 'returns received by the time the confirms arrived')
  await sleep(QUIET_MS)
  eq(returned.map(m => m.content.toString()), ['lost-default', 'lost-direct'], 'returned bodies')
  const [r1, r2] = returned
  eq([r1.fields.replyCode, r1.fields.replyText, r1.fields.exchange, r1.fields.routingKey],
    [312, 'NO_ROUTE', '', lostKey], 'first basic.return')
  eq([r1.properties.messageId, r1.properties.headers], ['r1', { h: 1 }], 'properties of the first return')
  eq([r2.fields.replyCode, r2.fields.replyText, r2.fields.exchange, r2.fields.routingKey],
    [312, 'NO_ROUTE', direct, 'no-binding'], 'second basic.return')
  const got = await drain(ch, q)
  eq(got.map(m => m.content.toString()), ['routed'], 'the routable mandatory message was delivered')
  await ch.deleteExchange(direct)
  await ch.close()
  await conn.close()
  return 'unroutable mandatory messages returned with 312 NO_ROUTE'
}

const SCENARIOS = {
  confirms_prefetch: confirmsPrefetch,
  exchanges,
  rpc_direct_reply_to: rpcDirectReplyTo,
  nack_reject_channel_error: nackRejectChannelError,
  mandatory_return: mandatoryReturn
}

async function main () {
  const [url, scenario] = process.argv.slice(2)
  const run = SCENARIOS[scenario]
  if (!url || !run) {
    console.error(`usage: node scenario.js AMQP_URL {${Object.keys(SCENARIOS).join('|')}}`)
    process.exit(64)
  }
  const timer = setTimeout(() => {
    console.error(`amqplib FAIL: ${scenario}: no result after ${SCENARIO_LIMIT_MS} ms; ${unexpected.join('; ')}`)
    process.exit(2)
  }, SCENARIO_LIMIT_MS)
  const summary = await run(url)
  clearTimeout(timer)
  if (unexpected.length) throw new Error('unexpected events: ' + unexpected.join('; '))
  console.log(`amqplib ok: ${scenario}: ${summary} (server: ${server})`)
}

main().catch(e => {
  console.error(`amqplib FAIL: ${process.argv[3]}: ${e.stack || e}`)
  if (unexpected.length) console.error('also: ' + unexpected.join('; '))
  process.exit(1)
})
