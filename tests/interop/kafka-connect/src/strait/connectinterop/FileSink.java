package strait.connectinterop;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collection;
import java.util.List;
import java.util.Map;

import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.sink.SinkConnector;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;

/** A sink connector that appends "partition offset key value" per record to {@code file}. */
public final class FileSink extends SinkConnector {
    private Map<String, String> props;

    @Override public void start(Map<String, String> props) { this.props = props; }
    @Override public Class<? extends Task> taskClass() { return Writer.class; }
    @Override public List<Map<String, String>> taskConfigs(int max) { return List.of(props); }
    @Override public void stop() {}
    @Override public ConfigDef config() {
        return new ConfigDef().define("file", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "file to append to");
    }
    @Override public String version() { return "1"; }

    public static final class Writer extends SinkTask {
        private Path file;

        @Override public String version() { return "1"; }
        @Override public void start(Map<String, String> props) { file = Path.of(props.get("file")); }

        @Override public void put(Collection<SinkRecord> records) {
            StringBuilder sb = new StringBuilder();
            for (SinkRecord r : records) {
                sb.append(r.kafkaPartition()).append(' ').append(r.kafkaOffset()).append(' ')
                    .append(r.key()).append(' ').append(r.value()).append('\n');
            }
            try {
                Files.writeString(file, sb, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        @Override public void flush(Map<TopicPartition, OffsetAndMetadata> offsets) {}
        @Override public void stop() {}
    }
}
