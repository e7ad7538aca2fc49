// kafkajs against Herald: admin create, produce (idempotent, acks -1),
// consume with a consumer group, commit, and read the committed offsets.
// Usage: node smoke.js HOST:PORT. Exits non-zero on any failure.
const { Kafka, logLevel } = require('kafkajs')

async function main () {
  const broker = process.argv[2]
  const kafka = new Kafka({ clientId: 'kjs', brokers: [broker], logLevel: logLevel.ERROR, retry: { retries: 3 } })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: 'kjs', numPartitions: 2 }], waitForLeaders: true })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const messages = []
  for (let i = 0; i < 100; i++) messages.push({ key: `k${i % 4}`, value: `v${i}`, headers: { h: `x${i}` } })
  await producer.send({ topic: 'kjs', acks: -1, messages })
  await producer.disconnect()

  const consumer = kafka.consumer({ groupId: 'kjs-group', sessionTimeout: 10000, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topic: 'kjs', fromBeginning: true })
  const seen = new Set()
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout, got ${seen.size}`)), 30000)
    consumer.run({
      eachMessage: async ({ message }) => {
        if (message.headers.h.toString() !== 'x' + message.value.toString().slice(1)) reject(new Error('header mismatch'))
        seen.add(message.value.toString())
        if (seen.size === 100) { clearTimeout(timer); resolve() }
      }
    }).catch(reject)
  })
  await consumer.commitOffsets([]) // auto-commit has run; force a final commit round
  await consumer.disconnect()
  const offsets = await admin.fetchOffsets({ groupId: 'kjs-group', topics: ['kjs'] })
  const total = offsets[0].partitions.reduce((s, p) => s + Number(p.offset), 0)
  await admin.disconnect()
  if (total !== 100) throw new Error(`committed offsets sum to ${total}, expected 100`)
  console.log('kafkajs ok: 100 produced, consumed and committed')
}

main().catch(e => { console.error(e); process.exit(1) })
