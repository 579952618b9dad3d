package sqlstore

import (
	"context"
	"fmt"
)

func (s *Store) RecordDelivery(ctx context.Context, id, event string) (bool, error) {
	res, err := s.conn().exec(ctx, insertDelivery, id, event, s.now())
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", id, err)
	}
	return n == 1, nil
}

func (s *Store) ForgetDelivery(ctx context.Context, id string) error {
	if _, err := s.conn().exec(ctx, `DELETE FROM deliveries WHERE id = ?`, id); err != nil {
		return fmt.Errorf("forget delivery %s: %w", id, err)
	}
	return nil
}
