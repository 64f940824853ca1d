import HummingbirdCore
import Logging
import NIOCore
import NIOSSL

/// A Hummingbird child channel that puts TLS in front of `base`, with the context `tls` holds when the connection is
/// accepted: after `ServerTLS.reload()` new connections get the new certificate, and the ones already open keep theirs.
struct ReloadingTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let tls: ServerTLS

    /// Runs on the child channel's event loop, once per accepted connection.
    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let context = tls.context
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 over TLS, with the certificate `tls` holds at each connection's start.
    static func http1(tls: ServerTLS, configuration: HTTP1Channel.Configuration) -> HTTPServerBuilder {
        .init { responder in
            ReloadingTLSChannel(base: HTTP1Channel(responder: responder, configuration: configuration), tls: tls)
        }
    }
}
