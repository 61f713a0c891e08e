package strait.interop;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.zip.CRC32;

import org.reactivestreams.Publisher;
import org.reactivestreams.Subscriber;
import org.reactivestreams.Subscription;

import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;
import software.amazon.awssdk.core.interceptor.SdkExecutionAttribute;

/**
 * Copies the raw bytes of every SubscribeToShard response as the SDK reads them and decodes the
 * application/vnd.amazon.eventstream framing itself, so the suite can tell which headers and which payload
 * encoding strait put on the wire (the SDK's own decoding hides both). The bytes handed to the SDK are untouched.
 */
final class EventStreamTap implements ExecutionInterceptor {
    /** One event-stream message as seen on the wire. */
    record Message(Map<String, String> headers, byte[] payload, boolean crcOk) {
        String header(String name) { return headers.get(name); }

        /** "cbor", "json", "empty" or "other", from the payload's first byte. */
        String payloadKind() {
            if (payload.length == 0) return "empty";
            int b = payload[0] & 0xff;
            if (b == '{') return "json";
            if ((b >> 5) == 5) return "cbor"; // major type 5 = map (0xa0..0xbf, incl. 0xbf indefinite)
            return "other";
        }
    }

    final ConcurrentLinkedQueue<Message> messages = new ConcurrentLinkedQueue<>();
    final ConcurrentLinkedQueue<String> framingErrors = new ConcurrentLinkedQueue<>();
    final ConcurrentLinkedQueue<String> responseContentTypes = new ConcurrentLinkedQueue<>();

    @Override
    public Optional<Publisher<ByteBuffer>> modifyAsyncHttpResponseContent(Context.ModifyHttpResponse ctx,
                                                                         ExecutionAttributes attrs) {
        Optional<Publisher<ByteBuffer>> body = ctx.responsePublisher();
        if (!"SubscribeToShard".equals(attrs.getAttribute(SdkExecutionAttribute.OPERATION_NAME)) || body.isEmpty()
                || !ctx.httpResponse().isSuccessful()) {
            return body;
        }
        responseContentTypes.add(ctx.httpResponse().firstMatchingHeader("Content-Type").orElse("<none>"));
        Publisher<ByteBuffer> inner = body.get();
        Decoder dec = new Decoder();
        return Optional.of(s -> inner.subscribe(new Subscriber<ByteBuffer>() {
            @Override public void onSubscribe(Subscription sub) { s.onSubscribe(sub); }
            @Override public void onNext(ByteBuffer bb) {
                try {
                    dec.feed(bb.duplicate());
                } catch (RuntimeException e) {
                    framingErrors.add(String.valueOf(e));
                }
                s.onNext(bb);
            }
            @Override public void onError(Throwable t) { s.onError(t); }
            @Override public void onComplete() {
                if (dec.pending() > 0) framingErrors.add(dec.pending() + " bytes left after the last complete message");
                s.onComplete();
            }
        }));
    }

    /** Incremental decoder of event-stream messages (prelude, headers, payload, CRCs). */
    private final class Decoder {
        private final ByteArrayOutputStream buf = new ByteArrayOutputStream();

        int pending() { return buf.size(); }

        void feed(ByteBuffer bb) {
            byte[] chunk = new byte[bb.remaining()];
            bb.get(chunk);
            buf.writeBytes(chunk);
            byte[] all = buf.toByteArray();
            int off = 0;
            while (all.length - off >= 12) {
                ByteBuffer p = ByteBuffer.wrap(all, off, all.length - off);
                int total = p.getInt(off);
                int hlen = p.getInt(off + 4);
                if (total < 16 || hlen < 0 || hlen > total - 16) {
                    throw new IllegalStateException("bad prelude: total " + total + ", headers " + hlen);
                }
                if (all.length - off < total) break;
                CRC32 c = new CRC32();
                c.update(all, off, 8);
                boolean preludeOk = (int) c.getValue() == p.getInt(off + 8);
                CRC32 m = new CRC32();
                m.update(all, off, total - 4);
                boolean msgOk = (int) m.getValue() == p.getInt(off + total - 4);
                Map<String, String> headers = parseHeaders(all, off + 12, hlen);
                byte[] payload = new byte[total - 16 - hlen];
                System.arraycopy(all, off + 12 + hlen, payload, 0, payload.length);
                messages.add(new Message(headers, payload, preludeOk && msgOk));
                off += total;
            }
            buf.reset();
            buf.write(all, off, all.length - off);
        }

        private Map<String, String> parseHeaders(byte[] a, int from, int len) {
            Map<String, String> h = new LinkedHashMap<>();
            ByteBuffer b = ByteBuffer.wrap(a, from, len);
            while (b.hasRemaining()) {
                int nl = b.get() & 0xff;
                byte[] name = new byte[nl];
                b.get(name);
                int type = b.get() & 0xff;
                String v;
                switch (type) {
                    case 0 -> v = "true";
                    case 1 -> v = "false";
                    case 2 -> v = Byte.toString(b.get());
                    case 3 -> v = Short.toString(b.getShort());
                    case 4 -> v = Integer.toString(b.getInt());
                    case 5, 8 -> v = Long.toString(b.getLong());
                    case 6, 7 -> {
                        byte[] val = new byte[b.getShort() & 0xffff];
                        b.get(val);
                        v = type == 7 ? new String(val, StandardCharsets.UTF_8) : "<" + val.length + " bytes>";
                    }
                    case 9 -> {
                        b.position(b.position() + 16);
                        v = "<uuid>";
                    }
                    default -> throw new IllegalStateException("unknown header value type " + type);
                }
                h.put(new String(name, StandardCharsets.UTF_8), v);
            }
            return h;
        }
    }
}
