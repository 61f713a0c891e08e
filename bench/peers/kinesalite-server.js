// Starts kinesalite on 127.0.0.1 only (its CLI binds every interface).
// usage: node kinesalite-server.js PORT [DATA_PATH]
// Without DATA_PATH kinesalite keeps everything in memory (memdown); with it, it uses leveldown
// on disk, if leveldown is installed.
'use strict'
const path = require('path')
const kinesalite = require(path.join(__dirname, 'node_modules', 'kinesalite'))

const port = parseInt(process.argv[2] || '4568', 10)
const opts = { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 }
if (process.argv[3]) opts.path = process.argv[3]

const server = kinesalite(opts)
server.listen(port, '127.0.0.1', function (err) {
  if (err) { console.error(err); process.exit(1) }
  console.error('kinesalite listening on 127.0.0.1:' + port)
})
function stop () { server.close(); process.exit(0) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
