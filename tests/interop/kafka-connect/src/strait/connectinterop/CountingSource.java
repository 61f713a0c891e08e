package strait.connectinterop;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.source.SourceConnector;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.source.SourceTask;

/**
 * A source connector that writes {@code count} records ("seq-N", key "key-(N % keys)") to {@code topic}, keeping its
 * position in Connect's source offsets, so a restarted worker goes on where it stopped.
 */
public final class CountingSource extends SourceConnector {
    private Map<String, String> props;

    @Override public void start(Map<String, String> props) { this.props = props; }
    @Override public Class<? extends Task> taskClass() { return Counter.class; }
    @Override public List<Map<String, String>> taskConfigs(int max) { return List.of(props); }
    @Override public void stop() {}
    @Override public ConfigDef config() {
        return new ConfigDef()
            .define("topic", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "topic to write")
            .define("count", ConfigDef.Type.INT, ConfigDef.Importance.HIGH, "records to write")
            .define("keys", ConfigDef.Type.INT, 10, ConfigDef.Importance.LOW, "distinct keys");
    }
    @Override public String version() { return "1"; }

    public static final class Counter extends SourceTask {
        private static final Map<String, String> PARTITION = Map.of("source", "counter");
        private String topic;
        private int count;
        private int keys;
        private int next;

        @Override public String version() { return "1"; }

        @Override public void start(Map<String, String> props) {
            topic = props.get("topic");
            count = Integer.parseInt(props.get("count"));
            keys = Integer.parseInt(props.getOrDefault("keys", "10"));
            Map<String, Object> at = context.offsetStorageReader().offset(PARTITION);
            next = at == null ? 0 : ((Number) at.get("next")).intValue();
        }

        @Override public List<SourceRecord> poll() throws InterruptedException {
            if (next >= count) {
                Thread.sleep(200);
                return null;
            }
            List<SourceRecord> out = new ArrayList<>();
            for (int i = 0; i < 100 && next < count; i++, next++) {
                out.add(new SourceRecord(PARTITION, Map.of("next", next + 1), topic, null,
                    Schema.STRING_SCHEMA, "key-" + (next % keys), Schema.STRING_SCHEMA, "seq-" + next));
            }
            return out;
        }

        @Override public void stop() {}
    }
}
